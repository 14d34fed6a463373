// Where a session command points: a local grid folder, or a deployed AWS grid found from its stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { deployedGridFromOutputs, describeStackOutputs, openAwsBackends, readOutputsFile } from '../backends/aws';
import { GridClient } from '../client';
import { applyOverrides, compileConfig } from '../core';
import { createLogger, type Logger } from '../logging';
import { readConfigFile } from './config-loader';
import { startEmbeddedGrid } from '../local-grid';
import { UsageError } from './usage-error';

export const LOCAL_CONFIG_FILE = 'config.json';

export interface GridTargetFlags {
  /** `local` (default) or `aws`. */
  readonly grid?: string;
  /** Local grid folder. */
  readonly dir: string;
  /** AWS: the CloudFormation stack of the grid. */
  readonly stack?: string;
  /** AWS: a `cdk deploy --outputs-file` JSON instead of a live lookup. */
  readonly outputs?: string;
  readonly region?: string;
}

export interface ClientHandle {
  readonly client: GridClient;
  close(): Promise<void>;
}

/** The `htcgrid results` command line that reads `sessionId` back from the grid the flags name. */
export function reattachCommand(sessionId: string, flags: GridTargetFlags): string {
  const quote = (v: string): string => (/^[\w./:@=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const target: string[] = [];
  if (flags.stack) target.push('--stack', flags.stack);
  if (flags.outputs) target.push('--outputs', flags.outputs);
  if (flags.region) target.push('--region', flags.region);
  if (target.length === 0 && flags.grid === 'aws') target.push('--grid', 'aws');
  if (target.length === 0 && flags.dir !== DEFAULT_GRID_DIR) target.push('--dir', flags.dir);
  return ['htcgrid', 'results', sessionId, ...target.map(quote), '--out', 'results.jsonl'].join(' ');
}

/**
 * How a client of a deployed grid looks for results. Every look is a billed Query (+ BatchGet): 50 ms after the
 * handle starts, then each wait twice the last up to 2 s (six looks in the first 2 s), so an interactive task is seen
 * within tens of milliseconds of its end, while a long session costs about one look per 2 s. Measured with
 * bench/aws-requests.ts: 2.55 requests per task in all (2.49 polling every 2 s); growing by half instead made 2.63.
 */
export const AWS_RESULT_POLLING = { pollIntervalMs: 2_000, minPollIntervalMs: 50 } as const;

/** The grid folder the session commands use without `--dir`. */
export const DEFAULT_GRID_DIR = '.htcgrid';

/**
 * Warnings of a session command's client and backends, as JSON lines on stderr: among them a results stream's
 * `results recovered by a full re-read` (see `SessionHandle.results`), which the user should see (and report if it
 * recurs).
 */
function sessionCommandLogger(): Logger {
  return createLogger({ level: 'warn' });
}

/** Opens a client on the grid the flags name; explains what is missing when they name none. */
export async function openGridClient(flags: GridTargetFlags): Promise<ClientHandle> {
  const kind = flags.grid ?? (flags.stack || flags.outputs ? 'aws' : 'local');
  if (kind === 'aws') return openAwsClient(flags);
  if (kind !== 'local') throw new UsageError(`--grid ${kind} is not one of local, aws`);
  const configPath = path.join(flags.dir, LOCAL_CONFIG_FILE);
  if (!fs.existsSync(configPath)) {
    throw new UsageError(
      `${flags.dir} is not a local grid folder (no ${LOCAL_CONFIG_FILE}): start one with \`htcgrid local up --dir ${flags.dir} --worker <dir>\`, or pass --grid aws --stack <name>`,
    );
  }
  const config = compileConfig(readConfigFile(configPath), configPath);
  const grid = await startEmbeddedGrid({ dataDir: flags.dir, config, logger: sessionCommandLogger() });
  return { client: grid.client, close: () => grid.close() };
}

async function openAwsClient(flags: GridTargetFlags): Promise<ClientHandle> {
  if (!flags.stack && !flags.outputs) {
    throw new UsageError(
      '--grid aws needs --stack <name> (read with your AWS credentials) or --outputs <cdk-outputs.json>',
    );
  }
  const outputs = flags.outputs
    ? readOutputsFile(flags.outputs, flags.stack)
    : await describeStackOutputs(flags.stack!, flags.region);
  const deployed = deployedGridFromOutputs(outputs);
  const region = flags.region ?? deployed.resources.region;
  // Without a published client configuration, defaults hold; the queue count fixes the priority levels.
  const config = compileConfig(
    applyOverrides(deployed.clientConfig ?? {}, { priority_levels: deployed.resources.queueUrls.length, region }),
    'stack outputs',
  );
  // The published task_retention_sec sets the TTL of the tasks this client cancels. Agents push completion notices
  // to a queue of this client's own (when the stack names their prefix): a handle looks as a task ends, and polls
  // every 2 s besides.
  const backends = openAwsBackends({ ...deployed.resources, region }, { config, receiveNotices: true });
  const client = new GridClient({ config, ...backends, ...AWS_RESULT_POLLING, logger: sessionCommandLogger() });
  return { client, close: () => backends.close() };
}
