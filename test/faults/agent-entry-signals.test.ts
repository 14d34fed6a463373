// The AWS agent's entry (bin/agent.ts) as its container runs it, a real process on the emulators behind the RIE API:
// SIGTERM drains (the task in flight finishes and is recorded, then exit 0); a second signal ends the grace (the task
// in flight is handed back, uncharged, then exit 0).
import fs from 'node:fs';
import path from 'node:path';
import { compileConfig } from '../../lib/core';
import { GridClient } from '../../lib/client';
import type { RieServer } from '../../twin/stand-ins/rie-server';
import { spawnAwsAgent, startPythonRie, type AwsAgentProcess } from '../support/aws-agent';
import { createGridResources } from '../support/emulators';
import { useEmulators } from '../support/emulator-suite';
import { tempDir, waitFor } from '../support/local-grid';
import { FAULT_WORKER } from './fault-helpers';

const config = compileConfig({ slots: 1, empty_task_queue_backoff_timeout_sec: 0.05, max_attempts: 3 });
const suite = useEmulators();

describe('the agent entry (bin/agent.ts) stopped by signals', () => {
  let rie: RieServer | undefined;
  let agent: AwsAgentProcess | undefined;
  afterEach(async () => {
    if (agent && agent.child.exitCode === null) {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    await rie?.close();
  });

  /** One task in flight on a fresh grid: it started and waits for `gate` to exist. */
  async function oneTaskInFlight(graceMs: number, gate: string) {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    rie = await startPythonRie(FAULT_WORKER, 300);
    agent = spawnAwsAgent({
      emulators: suite.emulators,
      resources,
      config,
      rie,
      graceMs,
      env: { HTCGRID_LOG_LEVEL: 'info' },
    });
    const logDir = tempDir();
    const client = new GridClient({ config, ...backends, pollIntervalMs: 100 });
    const handle = await client.submit([{ log_dir: logDir, wait_file_on: { '1': gate } }]);
    const executions = path.join(logDir, 'executions.log');
    await waitFor(() => fs.existsSync(executions), 60_000, 'the task to start');
    return { backends, handle, executions, taskId: `${handle.sessionId}_0` };
  }

  it('SIGTERM drains: the task in flight finishes and is recorded, then the agent exits 0', async () => {
    const gate = path.join(tempDir(), 'open');
    const { backends, executions, taskId } = await oneTaskInFlight(600_000, gate);

    agent!.child.kill('SIGTERM');
    await waitFor(() => /"msg":"draining"/.test(agent!.stderr()), 20_000, 'the agent to log draining');
    // Draining waits for the task: the agent is still there until the task can finish.
    expect(agent!.child.exitCode).toBeNull();
    fs.writeFileSync(gate, '');

    expect(await agent!.exited).toBe(0);
    expect(await backends.table.getTask(taskId)).toMatchObject({ state: 'succeeded' });
    expect(fs.readFileSync(executions, 'utf8').trim().split('\n')).toHaveLength(1);
  }, 120_000);

  it('a second signal ends the grace: the task in flight is handed back uncharged and the agent exits 0', async () => {
    const gate = path.join(tempDir(), 'never-opened');
    const { backends, taskId } = await oneTaskInFlight(600_000, gate);

    agent!.child.kill('SIGTERM');
    await waitFor(() => /"msg":"draining"/.test(agent!.stderr()), 20_000, 'the agent to log draining');
    expect(agent!.child.exitCode).toBeNull();
    agent!.child.kill('SIGTERM');

    // Ten minutes of grace were left: only the second signal lets it exit now.
    expect(await agent!.exited).toBe(0);
    expect(agent!.stderr()).toMatch(/"msg":"stopping now"/);
    expect(await backends.table.getTask(taskId)).toMatchObject({ state: 'pending', failures: 0 });
  }, 120_000);
});
