// Results exactly as the worker returned them on the AWS backends (DynamoDB Local, SQS and S3 emulators): NaN,
// infinities, -0.0, big integers and any Unicode, inline in the table or in S3, through the RIE API or pipes.
import path from 'node:path';
import type { AwsBackends } from '../../../lib/backends/aws';
import { GridClient } from '../../../lib/client';
import { compileConfig, type GridConfig } from '../../../lib/core/config';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { Agent } from '../../../lib/runtime/agent';
import { createLocalInvoker } from '../../../lib/runtime/local';
import { RieInvoker } from '../../../lib/runtime/rie';
import { RieServer } from '../../../twin/stand-ins/rie-server';
import { createGridResources } from '../../support/emulators';
import { useEmulators, writeOutputsFile } from '../../support/emulator-suite';
import { checkWithPython, EXACT_WORKERS, expectedSdkValue, type Flavour } from '../../support/exact-results';
import { runHtcgrid } from '../../support/htcgrid-cli';
import { collect, tempDir } from '../../support/local-grid';

const suite = useEmulators({ env: true });

/** One result inline in the table, one in S3 (inline limit 1 KiB). */
const TASKS = [{}, { pad: 4000 }];

type Path = 'rie' | 'pipes';

/** Starts one agent slot running the flavour's exact worker, through the RIE API (as in ECS) or local pipes. */
async function startAgent(flavour: Flavour, via: Path, config: GridConfig, backends: AwsBackends): Promise<void> {
  const worker = EXACT_WORKERS[flavour];
  const invoker = () =>
    createLocalInvoker({
      taskRoot: worker.dir,
      handler: worker.handler,
      runtime: resolveRuntime(flavour === 'python' ? 'python3.12' : 'nodejs22.x'),
      pythonExecutable: 'python3',
    });
  let createInvoker = invoker;
  if (via === 'rie') {
    const rie = await RieServer.start({ invoker: invoker(), functionTimeoutSec: 30 });
    suite.closeAfterTest(rie);
    createInvoker = () => new RieInvoker({ endpoint: rie.endpoint });
  }
  const agent = new Agent({ config, ...backends, createInvoker, slots: 1, receiveWaitMs: 200 });
  await agent.start();
  suite.closeAfterTest({ close: () => agent.stop(5_000) });
}

describe.each<[Flavour, Path]>([
  ['python', 'rie'],
  ['node', 'pipes'],
])('results of a %s worker on the AWS backends (invoked through %s)', (flavour, via) => {
  it('the SDK gives NaN and big integers back, and `htcgrid results` writes a file Python reads back exactly', async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    const config = compileConfig({
      slots: 1,
      inline_payload_max_bytes: 1024,
      empty_task_queue_backoff_timeout_sec: 0.05,
    });
    await startAgent(flavour, via, config, backends);
    const client = new GridClient({ config, ...backends, pollIntervalMs: 100 });

    const handle = await client.submit(TASKS);
    const results = await collect(handle.results());

    expect(results.map((r) => r.state)).toEqual(['succeeded', 'succeeded']);
    expect(results[0]!.result).toEqual(expectedSdkValue(flavour));
    expect(results[1]!.result).toEqual(expectedSdkValue(flavour, 4000));
    expect((await backends.table.getTask(`${handle.sessionId}_1`))?.result).toEqual({
      key: expect.any(String),
      bytes: expect.any(Number),
    });

    const out = path.join(tempDir(), 'results.jsonl');
    const read = await runHtcgrid('results', handle.sessionId, '--outputs', writeOutputsFile(resources), '--out', out);
    expect(read).toMatchObject({ code: 0 });
    expect(checkWithPython(out, flavour)).toEqual({ status: 0, output: 'ok 2\n' });
  });
});
