// The local grid's agent registry: agents heartbeat into files; readers see the live ones only.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { FileAgentRegistry } from '../../../lib/backends/local';
import type { AgentPresence } from '../../../lib/ports';
import fs from 'node:fs';
import { PresenceHeartbeat } from '../../../lib/runtime/agent';
import { capturedLogger } from '../../support/fake-ports';
import { tempDir } from '../../support/local-grid';

function presence(overrides: Partial<AgentPresence> = {}): AgentPresence {
  return {
    agentId: `${os.hostname()}:${process.pid}:a`,
    host: os.hostname(),
    pid: process.pid,
    slots: 2,
    handler: 'lambda_function.lambda_handler',
    runtime: 'python3.12',
    startedAt: 1_000,
    heartbeatAt: 1_000,
    expiresAt: 7_000,
    state: 'alive',
    ...overrides,
  };
}

describe('the file agent registry', () => {
  it('lists an agent from its first heartbeat until it expires or is removed', async () => {
    const registry = new FileAgentRegistry(path.join(tempDir(), 'agents'));
    expect(await registry.listAlive(0)).toEqual([]);

    await registry.heartbeat(presence());
    await registry.heartbeat(presence({ agentId: 'other-host:1:b', host: 'other-host', pid: 1, startedAt: 2_000 }));
    expect((await registry.listAlive(6_999)).map((a) => a.agentId)).toEqual([
      `${os.hostname()}:${process.pid}:a`,
      'other-host:1:b',
    ]);
    expect(await registry.listAlive(7_000)).toEqual([]);

    await registry.heartbeat(presence({ heartbeatAt: 6_000, expiresAt: 12_000, state: 'draining' }));
    expect(await registry.listAlive(8_000)).toEqual([expect.objectContaining({ state: 'draining' })]);
    await registry.remove(`${os.hostname()}:${process.pid}:a`);
    expect(await registry.listAlive(8_000)).toEqual([]);
  });

  it('does not list an agent of this host whose process is gone, even before its heartbeat expires', async () => {
    const registry = new FileAgentRegistry(path.join(tempDir(), 'agents'));
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await registry.heartbeat(presence({ agentId: 'gone', pid: child.pid! }));
    expect(await registry.listAlive(2_000)).toHaveLength(1);

    child.kill('SIGKILL');
    await exited;

    expect(await registry.listAlive(2_000)).toEqual([]);
  });
});

describe('an agent waiting for disk space, in the registry', () => {
  it('is told by its heartbeat at once, and an entry written before the field existed still reads', async () => {
    const dir = path.join(tempDir(), 'agents');
    const registry = new FileAgentRegistry(dir);
    // An entry as an earlier version wrote it: no waitingForDisk.
    fs.mkdirSync(dir, { recursive: true });
    const earlier = presence({ agentId: 'old-host:1:e', host: 'old-host', pid: 1, expiresAt: 90_000 });
    fs.writeFileSync(path.join(dir, 'old-host_1_e.json'), JSON.stringify(earlier));
    let waiting = false;
    const heartbeat = new PresenceHeartbeat({
      registry,
      presence: { agentId: 'x:1:a', host: 'x', pid: 1, slots: 2, handler: 'h.f', runtime: 'nodejs22.x', startedAt: 0 },
      activity: () => ({
        busySlots: 0,
        runtimeRestarts: 0,
        tasks: { claimed: 0, succeeded: 0, failed: 0, retried: 0, released: 0, dropped: 0 },
        waitingForDisk: waiting,
      }),
      // No tick during the test: what is written is what `refresh` wrote.
      intervalMs: 600_000,
      clock: () => 1_000,
    });
    await heartbeat.start();
    const entries = async (): Promise<Record<string, boolean | undefined>> =>
      Object.fromEntries((await registry.listAlive(2_000)).map((a) => [a.agentId, a.waitingForDisk]));
    expect(await entries()).toEqual({ 'old-host:1:e': undefined, 'x:1:a': false });

    waiting = true;
    await heartbeat.refresh();
    expect(await entries()).toEqual({ 'old-host:1:e': undefined, 'x:1:a': true });

    waiting = false;
    await heartbeat.refresh();
    expect(await entries()).toEqual({ 'old-host:1:e': undefined, 'x:1:a': false });
    await heartbeat.stop();
  });

  it('heartbeats asked for at once are written one after another: none is lost to another on the same file', async () => {
    const registry = new FileAgentRegistry(path.join(tempDir(), 'agents'));
    const { logger, lines } = capturedLogger('warn');
    let beat = 0;
    const heartbeat = new PresenceHeartbeat({
      registry,
      presence: { agentId: 'x:1:a', host: 'x', pid: 1, slots: 2, handler: 'h.f', runtime: 'nodejs22.x', startedAt: 0 },
      activity: () => ({
        busySlots: beat++,
        runtimeRestarts: 0,
        tasks: { claimed: 0, succeeded: 0, failed: 0, retried: 0, released: 0, dropped: 0 },
      }),
      intervalMs: 600_000,
      logger,
    });
    await heartbeat.start();
    await Promise.all(Array.from({ length: 20 }, () => heartbeat.refresh()));

    expect(lines.filter((l) => l.msg.startsWith('agent heartbeat not recorded'))).toEqual([]);
    // The last one written read the activity last.
    expect(await registry.listAlive(Date.now())).toEqual([expect.objectContaining({ busySlots: beat - 1 })]);
    await heartbeat.stop();
  });
});

describe('the presence heartbeat', () => {
  it('registers at start, beats with the clock, marks draining, and removes the agent on stop', async () => {
    const registry = new FileAgentRegistry(path.join(tempDir(), 'agents'));
    let now = 10_000;
    const heartbeat = new PresenceHeartbeat({
      registry,
      presence: {
        agentId: 'x:1:a',
        host: 'x',
        pid: 1,
        slots: 4,
        handler: 'h.f',
        runtime: 'nodejs22.x',
        startedAt: 10_000,
      },
      intervalMs: 60_000,
      clock: () => now,
    });

    await heartbeat.start();
    expect(await registry.listAlive(now)).toEqual([
      expect.objectContaining({ agentId: 'x:1:a', slots: 4, heartbeatAt: 10_000, expiresAt: 190_000, state: 'alive' }),
    ]);
    now = 20_000;
    await heartbeat.drain();
    expect(await registry.listAlive(now)).toEqual([
      expect.objectContaining({ heartbeatAt: 20_000, state: 'draining' }),
    ]);

    await heartbeat.stop();
    await heartbeat.drain(); // after stop: writes nothing
    expect(await registry.listAlive(now)).toEqual([]);
    await heartbeat.stop(); // idempotent
  });
});
