// `htcgrid submit/status/results/cancel --grid aws`: the CLI finds a deployed grid from its stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import { main } from '../../lib/cli';
import { compileConfig } from '../../lib/core';
import { Agent } from '../../lib/runtime/agent';
import { createLocalInvoker } from '../../lib/runtime/local';
import { createGridResources, startEmulators, type Emulators } from '../support/emulators';
import { FIXTURES, tempDir } from '../support/local-grid';

let emulators: Emulators;
const saved = { ...process.env };
beforeAll(async () => {
  emulators = await startEmulators();
  Object.assign(process.env, emulators.env());
}, 120_000);
afterAll(async () => {
  process.env = saved;
  await emulators?.stop();
});

async function htcgrid(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
  const error = jest.spyOn(console, 'error').mockImplementation((line: string) => void err.push(line));
  try {
    const code = await main(['node', 'htcgrid', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('htcgrid against a grid on AWS', () => {
  it('submits from a cdk outputs file, waits for the results and reports the status', async () => {
    const resources = await createGridResources(emulators);
    const outputsFile = path.join(tempDir(), 'outputs.json');
    fs.writeFileSync(
      outputsFile,
      JSON.stringify({
        HtcGrid: {
          TableName: resources.tableName,
          QueueUrls: JSON.stringify(resources.queueUrls),
          DataBucket: resources.dataBucket,
          Region: 'us-east-1',
          ClientConfig: JSON.stringify({ max_attempts: 1 }),
        },
      }),
    );
    const config = compileConfig({ slots: 1, empty_task_queue_backoff_timeout_sec: 0.05 });
    const backends: AwsBackends = openAwsBackends(resources, { clients: emulators.clients() });
    const agent = new Agent({
      config,
      ...backends,
      receiveWaitMs: 200,
      createInvoker: () =>
        createLocalInvoker({
          taskRoot: path.join(FIXTURES, 'e2e', 'probe'),
          handler: 'lambda_function.lambda_handler',
          runtime: config.runtime,
        }),
    });
    await agent.start();
    try {
      const tasks = path.join(tempDir(), 'tasks.jsonl');
      fs.writeFileSync(tasks, '{"a":1}\n{"a":2}\n');
      const out = path.join(tempDir(), 'results.jsonl');

      const submitted = await htcgrid('submit', '--outputs', outputsFile, '--tasks', tasks, '--wait', '--out', out);

      expect(submitted.code).toBe(0);
      const sessionId = submitted.stdout.trim();
      const lines = fs
        .readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.result.event.a).sort()).toEqual([1, 2]);
      expect(lines[0].result.custom.session_id).toBe(sessionId);
      const status = await htcgrid('status', sessionId, '--grid', 'aws', '--outputs', outputsFile, '--json');
      expect(JSON.parse(status.stdout)).toMatchObject({ total: 2, done: true, counts: { succeeded: 2 } });
      // The file was counted ahead, so the two-task session's results sit in one index partition.
      const raw = emulators.clients().dynamodb;
      const sessionItem = await raw.send(
        new GetItemCommand({ TableName: resources.tableName, Key: { task_id: { S: `session#${sessionId}` } } }),
      );
      raw.destroy();
      expect(sessionItem.Item?.index_shards).toEqual({ N: '1' });
    } finally {
      await agent.stop(2_000);
      await backends.close();
    }
  });

  it('names what is missing when no stack is given', async () => {
    const run = await htcgrid('status', 'x', '--grid', 'aws');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--grid aws needs --stack <name>/);
  });

  it('explains an outputs file that is not from an htc-grid stack', async () => {
    const file = path.join(tempDir(), 'outputs.json');
    fs.writeFileSync(file, JSON.stringify({ Other: { Foo: 'bar' } }));
    const run = await htcgrid('status', 'x', '--outputs', file);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/stack output TableName is missing/);
  });
});
