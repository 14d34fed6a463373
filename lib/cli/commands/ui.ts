// `htcgrid ui --stack <name>` / `--outputs <file>`: the dashboard of a deployed grid, on loopback, behind a token.
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { describeStackOutputs, readOutputsFile, STACK_OUTPUTS } from '../../backends/aws/stack-outputs';
import { requestSigner } from '../../backends/aws/sigv4-signer';
import { DashboardProxy, DEFAULT_UI_PORT } from '../../http';
import { createLogger } from '../../logging';
import * as output from '../output';
import { UsageError } from '../usage-error';
import { parseHttpAddress } from './serve';

export interface UiFlags {
  readonly stack?: string;
  readonly outputs?: string;
  readonly region?: string;
  /** Where the dashboard listens. @default 127.0.0.1:8643 */
  readonly listen?: string;
  readonly logLevel?: string;
}

/** The API URL and region of a deployed grid, from its stack outputs. */
export async function deployedApi(flags: UiFlags): Promise<{ apiUrl: string; region: string }> {
  if (!flags.stack && !flags.outputs) {
    throw new UsageError(
      'htcgrid ui shows a deployed grid: pass --stack <name> (read with your AWS credentials) or --outputs <cdk-outputs.json>. ' +
        'A local grid serves the dashboard itself: `htcgrid local up --http` prints its address',
    );
  }
  const outputs = flags.outputs
    ? readOutputsFile(flags.outputs, flags.stack)
    : await describeStackOutputs(flags.stack!, flags.region);
  const apiUrl = outputs[STACK_OUTPUTS.apiUrl];
  if (!apiUrl) {
    throw new UsageError(
      `the stack outputs have no ${STACK_OUTPUTS.apiUrl}: deploy the grid with its HTTP API (the GridApi construct, part of HtcGrid) and read the outputs again`,
    );
  }
  const region =
    flags.region ?? outputs[STACK_OUTPUTS.region] ?? /\.lambda-url\.([a-z0-9-]+)\.on\.aws/.exec(apiUrl)?.[1];
  if (!region) throw new UsageError(`the region of ${apiUrl} is not known: pass --region`);
  return { apiUrl, region };
}

/** Serves the dashboard until SIGINT/SIGTERM; its API calls go to the grid signed with the user's credentials. */
export async function uiCommand(flags: UiFlags): Promise<number> {
  const { apiUrl, region } = await deployedApi(flags);
  const address =
    flags.listen === undefined ? { host: '127.0.0.1', port: DEFAULT_UI_PORT } : parseHttpAddress(flags.listen);
  const token = randomBytes(24).toString('base64url');
  const logger = createLogger({ level: flags.logLevel ?? 'warn', destination: 2 });
  let proxy: DashboardProxy;
  try {
    proxy = await DashboardProxy.start({ apiUrl, sign: requestSigner({ region }), token, ...address, logger });
  } catch (err) {
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      throw new UsageError(`${address.host}:${address.port} is in use: pass another, e.g. --listen 127.0.0.1:0`);
    }
    throw err;
  }
  output.info(`dashboard of ${flags.stack ?? flags.outputs}: ${proxy.url}/ui/#token=${token}`);
  output.info(`its API calls go to ${apiUrl}, signed with your AWS credentials (SigV4, ${region}); Ctrl-C stops it`);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await proxy.close();
  return 0;
}
