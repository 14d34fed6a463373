// The AWS grid's agent registry on DynamoDB Local, and `htcgrid status` reading it from stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { DynamoDbAgentRegistry } from '../../../lib/backends/aws';
import type { AgentPresence } from '../../../lib/ports';
import { PresenceHeartbeat } from '../../../lib/runtime/agent';
import { createGridResources } from '../../support/emulators';
import { useEmulators, writeOutputsFile } from '../../support/emulator-suite';
import { runHtcgrid } from '../../support/htcgrid-cli';
import { tempDir } from '../../support/local-grid';

const suite = useEmulators({ env: true });

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

describe('the DynamoDB agent registry', () => {
  it('lists agents from their heartbeat until it expires or they are removed', async () => {
    const resources = await createGridResources(suite.emulators);
    const client = suite.emulators.clients().dynamodb;
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
    const resources = await createGridResources(suite.emulators);
    const outputs = writeOutputsFile(resources);
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, '{"a":1}\n');
    const submitted = await runHtcgrid('submit', '--outputs', outputs, '--tasks', tasks);
    const sessionId = submitted.stdout.trim();

    const none = await runHtcgrid('status', sessionId, '--outputs', outputs);
    expect(none.stdout).toMatch(
      /^0 agents alive on this grid right now: its service starts agents when tasks are queued/m,
    );

    const client = suite.emulators.clients().dynamodb;
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
      const one = await runHtcgrid('status', sessionId, '--outputs', outputs, '--json');
      expect(JSON.parse(one.stdout)).toMatchObject({ agents: 1, slots: 2 });
    } finally {
      await heartbeat.stop();
      client.destroy();
    }
    expect(JSON.parse((await runHtcgrid('status', sessionId, '--outputs', outputs, '--json')).stdout)).toMatchObject({
      agents: 0,
    });
  });
});
