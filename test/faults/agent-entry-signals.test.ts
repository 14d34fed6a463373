// The AWS agent's entry (bin/agent.ts) as its container runs it, a real process on the emulators behind the RIE API:
// SIGTERM drains (the task in flight finishes and is recorded, then exit 0); a second signal ends the grace (the task
// in flight is handed back, uncharged, then exit 0).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { compileConfig, GRID_ENV } from '../../lib/core';
import { resourcesToEnv, type AwsGridResources } from '../../lib/core/grid-resources';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { GridClient } from '../../lib/client';
import { createLocalInvoker } from '../../lib/runtime/local';
import { RieServer } from '../../twin/stand-ins/rie-server';
import { createGridResources } from '../support/emulators';
import { useEmulators } from '../support/emulator-suite';
import { tempDir, waitFor } from '../support/local-grid';
import { FAULT_WORKER } from './fault-helpers';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const config = compileConfig({ slots: 1, empty_task_queue_backoff_timeout_sec: 0.05, max_attempts: 3 });
const suite = useEmulators();

interface AgentRun {
  readonly child: ChildProcess;
  /** Everything it logged so far. */
  log(): string;
  readonly exited: Promise<number | null>;
}

/** Starts bin/agent.ts (through tsx's loader, one process) on `resources`, its one slot behind `rie`. */
function startAgent(resources: AwsGridResources, rie: RieServer, graceMs: number): AgentRun {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'agent.ts')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...suite.emulators.env(),
      ...resourcesToEnv(resources),
      [GRID_ENV.config]: JSON.stringify(config.document),
      [GRID_ENV.lambdaEndpoint]: rie.endpoint,
      HTCGRID_KILL_RUNTIME_ON_ABORT: 'false',
      HTCGRID_DRAIN_GRACE_MS: String(graceMs),
      HTCGRID_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, log: () => text, exited };
}

describe('the agent entry (bin/agent.ts) stopped by signals', () => {
  let rie: RieServer | undefined;
  let agent: AgentRun | undefined;
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
    rie = await RieServer.start({
      invoker: createLocalInvoker({
        taskRoot: FAULT_WORKER,
        handler: 'lambda_function.lambda_handler',
        runtime: resolveRuntime('python3.12'),
        pythonExecutable: 'python3',
      }),
      functionTimeoutSec: 300,
    });
    agent = startAgent(resources, rie, graceMs);
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
    await waitFor(() => /"msg":"draining"/.test(agent!.log()), 20_000, 'the agent to log draining');
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
    await waitFor(() => /"msg":"draining"/.test(agent!.log()), 20_000, 'the agent to log draining');
    expect(agent!.child.exitCode).toBeNull();
    agent!.child.kill('SIGTERM');

    // Ten minutes of grace were left: only the second signal lets it exit now.
    expect(await agent!.exited).toBe(0);
    expect(agent!.log()).toMatch(/"msg":"stopping now"/);
    expect(await backends.table.getTask(taskId)).toMatchObject({ state: 'pending', failures: 0 });
  }, 120_000);
});
