// The AWS grid's agent registry on DynamoDB Local, and `htcgrid status` reading it from stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { DynamoDbAgentRegistry } from '../../../lib/backends/aws';
import { main } from '../../../lib/cli';
import type { AgentPresence } from '../../../lib/ports';
import { PresenceHeartbeat } from '../../../lib/runtime/agent';
import { createGridResources, startEmulators, type Emulators } from '../../support/emulators';
import { tempDir } from '../../support/local-grid';

let emulators: Emulators;
const savedEnv = { ...process.env };
beforeAll(async () => {
  emulators = await startEmulators();
  Object.assign(process.env, emulators.env());
}, 120_000);
afterAll(async () => {
  process.env = savedEnv;
  await emulators?.stop();
});

function presence(agentId: string, overrides: Partial<AgentPresence> = {}): AgentPresence {
  return {
    agentId,
    host: 'ip-10-0-1-2',
    pid: 7,
    slots: 1,
    handler: 'lambda_function.lambda_handler',
    runtime: 'python3.12',
    startedAt: 1_000,
    heartbeatAt: 1_000,
    expiresAt: 61_000,
    state: 'alive',
    ...overrides,
  };
}

async function htcgrid(...args: string[]): Promise<{ code: number; stdout: string }> {
  const out: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
  const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    return { code: await main(['node', 'htcgrid', ...args]), stdout: out.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('the DynamoDB agent registry', () => {
  it('lists agents from their heartbeat until it expires or they are removed', async () => {
    const resources = await createGridResources(emulators);
    const client = emulators.clients().dynamodb;
    const registry = new DynamoDbAgentRegistry({ tableName: resources.tableName, client });
    try {
      expect(await registry.listAlive(0)).toEqual([]);
      await registry.heartbeat(presence('b', { startedAt: 2_000 }));
      await registry.heartbeat(presence('a'));
      expect((await registry.listAlive(60_999)).map((a) => a.agentId)).toEqual(['a', 'b']);
      expect(await registry.listAlive(61_000)).toEqual([]);

      await registry.heartbeat(presence('a', { heartbeatAt: 50_000, expiresAt: 110_000, state: 'draining' }));
      expect(await registry.listAlive(70_000)).toEqual([expect.objectContaining({ agentId: 'a', state: 'draining' })]);
      await registry.remove('a');
      await registry.remove('never-registered');
      expect(await registry.listAlive(70_000)).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  it('lets `htcgrid status` say that no agent is alive on an AWS grid, and count them once one heartbeats', async () => {
    const resources = await createGridResources(emulators);
    const outputs = path.join(tempDir(), 'outputs.json');
    fs.writeFileSync(
      outputs,
      JSON.stringify({
        HtcGrid: {
          TableName: resources.tableName,
          QueueUrls: JSON.stringify(resources.queueUrls),
          DataBucket: resources.dataBucket,
          Region: 'us-east-1',
        },
      }),
    );
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, '{"a":1}\n');
    const submitted = await htcgrid('submit', '--outputs', outputs, '--tasks', tasks);
    const sessionId = submitted.stdout.trim();

    const none = await htcgrid('status', sessionId, '--outputs', outputs);
    expect(none.stdout).toMatch(
      /^0 agents alive on this grid right now: its service starts agents when tasks are queued/m,
    );

    const client = emulators.clients().dynamodb;
    const heartbeat = new PresenceHeartbeat({
      registry: new DynamoDbAgentRegistry({ tableName: resources.tableName, client }),
      presence: {
        agentId: 'ip-10-0-1-2:7:a',
        host: 'ip-10-0-1-2',
        pid: 7,
        slots: 2,
        handler: 'h.f',
        runtime: 'python3.12',
        startedAt: Date.now(),
      },
    });
    try {
      await heartbeat.start();
      const one = await htcgrid('status', sessionId, '--outputs', outputs, '--json');
      expect(JSON.parse(one.stdout)).toMatchObject({ agents: 1, slots: 2 });
    } finally {
      await heartbeat.stop();
      client.destroy();
    }
    expect(JSON.parse((await htcgrid('status', sessionId, '--outputs', outputs, '--json')).stdout)).toMatchObject({
      agents: 0,
    });
  });
});
