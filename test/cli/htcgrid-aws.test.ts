// `htcgrid submit/status/results/cancel --grid aws`: the CLI finds a deployed grid from its stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import { GridClient } from '../../lib/client';
import { compileConfig, type AwsGridResources, type GridConfig } from '../../lib/core';
import { Agent } from '../../lib/runtime/agent';
import { createLocalInvoker } from '../../lib/runtime/local';
import { createGridResources, type Emulators } from '../support/emulators';
import { useEmulators, writeOutputsFile } from '../support/emulator-suite';
import { runHtcgrid } from '../support/htcgrid-cli';
import { FIXTURES, tempDir } from '../support/local-grid';

const suite = useEmulators({ env: true });

/** An agent on the AWS backends with one slot running the probe worker on local pipes (not started). */
function probeAgent(config: GridConfig, backends: AwsBackends): Agent {
  return new Agent({
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
}

describe('htcgrid against a grid on AWS', () => {
  it('submits from a cdk outputs file, waits for the results and reports the status', async () => {
    const resources = await createGridResources(suite.emulators);
    const outputsFile = writeOutputsFile(resources, { ClientConfig: JSON.stringify({ max_attempts: 1 }) });
    const config = compileConfig({ slots: 1, empty_task_queue_backoff_timeout_sec: 0.05 });
    const backends = suite.backendsFor(resources);
    const agent = probeAgent(config, backends);
    await agent.start();
    try {
      const tasks = path.join(tempDir(), 'tasks.jsonl');
      fs.writeFileSync(tasks, '{"a":1}\n{"a":2}\n');
      const out = path.join(tempDir(), 'results.jsonl');

      const submitted = await runHtcgrid('submit', '--outputs', outputsFile, '--tasks', tasks, '--wait', '--out', out);

      expect(submitted.code).toBe(0);
      const sessionId = submitted.stdout.trim();
      const lines = fs
        .readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.result.event.a).sort()).toEqual([1, 2]);
      expect(lines[0].result.custom.session_id).toBe(sessionId);
      const status = await runHtcgrid('status', sessionId, '--grid', 'aws', '--outputs', outputsFile, '--json');
      expect(JSON.parse(status.stdout)).toMatchObject({ total: 2, done: true, counts: { succeeded: 2 } });
      // The file was counted ahead, so the two-task session's results sit in one index partition.
      const raw = suite.emulators.clients().dynamodb;
      const sessionItem = await raw.send(
        new GetItemCommand({ TableName: resources.tableName, Key: { task_id: { S: `session#${sessionId}` } } }),
      );
      raw.destroy();
      expect(sessionItem.Item?.index_shards).toEqual({ N: '1' });
    } finally {
      await agent.stop(2_000);
    }
  });

  it('names what is missing when no stack is given', async () => {
    const run = await runHtcgrid('status', 'x', '--grid', 'aws');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--grid aws needs --stack <name>/);
  });

  it('explains an outputs file that is not from an htc-grid stack', async () => {
    const file = path.join(tempDir(), 'outputs.json');
    fs.writeFileSync(file, JSON.stringify({ Other: { Foo: 'bar' } }));
    const run = await runHtcgrid('status', 'x', '--outputs', file);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/stack output TableName is missing/);
  });
});

describe('htcgrid delete on a grid in AWS', () => {
  let resources: AwsGridResources;
  let outputsFile: string;
  let backends: AwsBackends;
  let clients: ReturnType<Emulators['clients']>;
  beforeAll(async () => {
    resources = await createGridResources(suite.emulators);
    outputsFile = writeOutputsFile(resources, { ClientConfig: JSON.stringify({ inline_payload_max_bytes: 64 }) });
    clients = suite.emulators.clients();
    backends = openAwsBackends(resources, { clients });
  });
  afterAll(async () => {
    await backends?.close();
    for (const client of Object.values(clients ?? {})) client.destroy();
  });

  /** Every table item of a session: its tasks, manifests and the session item. */
  const itemsOf = async (sessionId: string): Promise<string[]> => {
    const out = await clients.dynamodb.send(
      new ScanCommand({
        TableName: resources.tableName,
        FilterExpression: 'session_id = :sid',
        ExpressionAttributeValues: { ':sid': { S: sessionId } },
        ConsistentRead: true,
      }),
    );
    return (out.Items ?? []).map((item) => String(item.task_id?.S));
  };
  /** Every data-plane object of a session. */
  const objectsOf = async (sessionId: string): Promise<string[]> => {
    const out = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: resources.dataBucket, Prefix: `data/sessions/${sessionId}/` }),
    );
    return (out.Contents ?? []).map((o) => String(o.Key));
  };
  const submit = async (events: unknown[]): Promise<string> => {
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, events.map((e) => JSON.stringify(e)).join('\n'));
    const run = await runHtcgrid('submit', '--outputs', outputsFile, '--tasks', tasks);
    expect(run.code).toBe(0);
    return run.stdout.trim().split('\n').pop()!;
  };

  it('removes a finished session: its task items, manifests and session item, and every object under its prefix', async () => {
    const config = compileConfig({
      slots: 1,
      empty_task_queue_backoff_timeout_sec: 0.05,
      inline_payload_max_bytes: 64,
    });
    const agent = probeAgent(config, backends);
    await agent.start();
    let doomed: string;
    let kept: string;
    try {
      // Payloads over 64 bytes go to S3, and so do the results that echo them.
      doomed = await submit([{ pad: 'x'.repeat(200) }, { a: 1 }]);
      kept = await submit([{ pad: 'y'.repeat(200) }]);
      const client = new GridClient({ config, ...backends, pollIntervalMs: 100 });
      for (const id of [doomed, kept]) {
        const handle = await client.session(id);
        await handle.wait({ pollIntervalMs: 100, signal: AbortSignal.timeout(30_000) });
      }
    } finally {
      await agent.stop(2_000);
    }
    // An object no task names any more (a result whose finish was refused) goes with its session too.
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: resources.dataBucket,
        Key: `data/sessions/${doomed}/${doomed}_0/result-9.json`,
        Body: '{}',
      }),
    );
    expect((await objectsOf(doomed)).length).toBeGreaterThanOrEqual(3);
    expect(await itemsOf(doomed)).toEqual(expect.arrayContaining([`session#${doomed}`, `${doomed}_0`, `${doomed}_1`]));

    const deleted = await runHtcgrid('delete', doomed, '--outputs', outputsFile);

    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toMatch(new RegExp(`deleted session ${doomed}: 2 task\\(s\\)`));
    expect(await itemsOf(doomed)).toEqual([]);
    expect(await objectsOf(doomed)).toEqual([]);
    expect((await runHtcgrid('status', doomed, '--outputs', outputsFile)).stderr).toMatch(/unknown session/);
    // Another session is untouched.
    expect(await itemsOf(kept)).toContain(`${kept}_0`);
    expect((await objectsOf(kept)).length).toBeGreaterThan(0);
  }, 60_000);

  it('names an unknown session with exit 2', async () => {
    const run = await runHtcgrid('delete', 'no-such-session', '--outputs', outputsFile);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown session 'no-such-session'/);
  });

  it('refuses a session with tasks still to run, naming --force, which cancels it first and deletes it', async () => {
    const live = await submit([{ pad: 'z'.repeat(200) }, { b: 2 }]);

    const refused = await runHtcgrid('delete', live, '--outputs', outputsFile);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`session '${live}' still has 2 task\\(s\\) pending or running`));
    expect(refused.stderr).toMatch(new RegExp(`htcgrid delete ${live} --force`));
    expect(await itemsOf(live)).toContain(`${live}_0`);

    const forced = await runHtcgrid('delete', live, '--outputs', outputsFile, '--force');
    expect(forced.code).toBe(0);
    expect(await itemsOf(live)).toEqual([]);
    expect(await objectsOf(live)).toEqual([]);
  });
});
