// The deployment twin end to end on the synthesized stack: a small run (2 ECS tasks x 2 slots), a cancel that stops
// the handler process within 2 s, the HTTP API served by its function URL to a Python session, and a SIGTERM drain of
// one ECS task. Needs root (namespaces); skips with a message.
import fs from 'node:fs';
import path from 'node:path';
import { checkApi } from '../../twin/api-client-check';
import type { EcsTask } from '../../twin/ecs/ecs-task';
import { unsupportedReason } from '../../twin/ecs/host-tools';
import { checkResults, runHtcgrid, writeTasksFile } from '../../twin/twin-client';
import { TwinDeployment } from '../../twin/twin-deployment';
import { waitFor } from '../support/emulators';

const REPO = path.resolve(__dirname, '..', '..');
const reason = unsupportedReason();
if (reason) console.warn(`skipping the deployment twin tests: ${reason}`);
const describeTwin = reason ? describe.skip : describe;

/** nanosleep and clock_nanosleep: where mock compute's handler waits (time.sleep) while it runs a task. */
const SLEEP_SYSCALLS = process.arch === 'arm64' ? ['101', '115'] : ['35', '230'];

/** Pids of the Python runtimes (the handlers) of an ECS task's Lambda containers; `busy`: those running a task. */
function handlerPids(task: EcsTask, busy = false): number[] {
  return task.containers
    .filter((c) => c.name.startsWith('lambda-'))
    .flatMap((c) => c.cgroupPids())
    .filter((pid) => {
      try {
        if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bootstrap.py')) return false;
        return !busy || SLEEP_SYSCALLS.includes(fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]!);
      } catch {
        return false;
      }
    });
}

describeTwin('the deployment twin on the synthesized stack (2 ECS tasks x 2 slots)', () => {
  let twin: TwinDeployment;
  const tasks: EcsTask[] = [];
  const events: string[] = [];

  beforeAll(async () => {
    twin = await TwinDeployment.deploy({
      repoRoot: REPO,
      context: { worker: 'workers/python/mock-compute', lambda_handler_file_name: 'mock_compute_engine', slots: '2' },
      progress: () => undefined,
    });
    for (let i = 0; i < 2; i++) {
      tasks.push(
        await twin.startTask((e) => {
          if (e.kind === 'container-stopped') events.push(`${e.task}/${e.container} exited ${e.exitCode}`);
        }),
      );
    }
    // Each task's agent has started once its init container succeeded and its Lambda containers started.
    await waitFor('both agents', async () => tasks.every((t) => t.container('agent')?.mainPid !== undefined), 180_000);
  }, 400_000);

  afterAll(async () => {
    await twin?.close();
  }, 300_000);

  const client = (args: string[]) =>
    runHtcgrid(REPO, [...args, '--outputs', twin.outputsFile], twin.roleEnv(twin.clientRoleId));

  it('runs a few hundred tasks: every one succeeds once, no IAM denial, no task stops', async () => {
    const file = path.join(twin.workDir, 'small.jsonl');
    const out = path.join(twin.workDir, 'small-results.jsonl');
    writeTasksFile(file, 300, (i) => ({ worker_arguments: [5, 0, 0], seed: i }));
    const run = await client(['submit', '--tasks', file, '--wait', '--out', out]).done;
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(checkResults(out, 300)).toMatchObject({ succeeded: 300, lost: 0, duplicated: 0 });
    expect(twin.ledger.summary().denials).toEqual([]);
    expect(tasks.every((t) => t.stopReason === undefined)).toBe(true);
  }, 300_000);

  it('serves the HTTP API from its function behind the function URL: Python signs, IAM allows only grantInvoke', async () => {
    await twin.startFunctionUrls(() => undefined);
    const front = twin.functionUrls[0]!;
    // Signed for another service: AWS_IAM auth refuses it before the function runs.
    const wrongService = await fetch(`${front.url}v1`, {
      headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/us-east-1/execute-api/aws4_request' },
    });
    expect(wrongService.status).toBe(403);
    const check = await checkApi(twin, {
      repoRoot: REPO,
      tasks: 40,
      event: (i) => ({ worker_arguments: [5, 0, 0], seed: i }),
      timeoutSec: 240,
    });
    expect(check).toMatchObject({ succeeded: 40, lost: 0, duplicated: 0, unsignedStatus: 403, failures: [] });
    expect(check.skipped).toBeUndefined();
    const byRole = twin.ledger.summary().checkedByRole;
    expect(Object.keys(byRole['API client role'] ?? {}).sort()).toEqual([
      'lambda:InvokeFunction',
      'lambda:InvokeFunctionUrl',
    ]);
    expect(Object.keys(byRole).some((r) => r.endsWith('(function URL)'))).toBe(true);
    expect(twin.ledger.summary().denials).toEqual([]);
  }, 300_000);

  it('stops a cancelled task in its Lambda container: the handler process is gone within 2 s', async () => {
    const file = path.join(twin.workDir, 'cancel.jsonl');
    writeTasksFile(file, 4, () => ({ worker_arguments: [120_000, 0, 0] }));
    const submitted = await client(['submit', '--tasks', file]).done;
    const session = submitted.stdout.trim().split('\n')[0]!;
    // Handlers running the long tasks (an agent may hold one of them ahead, waiting for a slot).
    await waitFor(
      'handlers running the tasks',
      async () => tasks.flatMap((t) => handlerPids(t, true)).length >= 2,
      120_000,
    );
    const handlers = tasks.flatMap((t) => handlerPids(t, true));
    expect((await client(['cancel', session]).done).code).toBe(0);
    const cancelled = Date.now();
    while (handlers.some((pid) => fs.existsSync(`/proc/${pid}`)) && Date.now() - cancelled < 10_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(handlers.filter((pid) => fs.existsSync(`/proc/${pid}`))).toEqual([]);
    expect(Date.now() - cancelled).toBeLessThanOrEqual(2000);
    const out = path.join(twin.workDir, 'cancel-results.jsonl');
    // `htcgrid results` exits 1 when not every task succeeded: here every one was cancelled.
    await client(['results', session, '--out', out]).done;
    expect(checkResults(out, 4)).toMatchObject({ cancelled: 4, lost: 0 });
  }, 300_000);

  it('drains an ECS task on SIGTERM: its running tasks finish or go to the other task, none is lost', async () => {
    const file = path.join(twin.workDir, 'drain.jsonl');
    const out = path.join(twin.workDir, 'drain-results.jsonl');
    writeTasksFile(file, 60, (i) => ({ worker_arguments: [1500, 0, 0], seed: i }));
    const run = client(['submit', '--tasks', file, '--wait', '--out', out]);
    await waitFor('handlers running in task-0', async () => handlerPids(tasks[0]!, true).length >= 1, 120_000);
    await tasks[0]!.stop('ServiceScheduler: draining task-0');
    const done = await run.done;
    expect(done.code).toBe(0);
    expect(checkResults(out, 60)).toMatchObject({ succeeded: 60, lost: 0, duplicated: 0 });
    const stopped = await tasks[0]!.stopped;
    // Agent first (it drains), then the Lambda containers: every one exits cleanly.
    expect(stopped.containers.filter((c) => c.name !== 'fetch-worker')).toEqual([
      { name: 'lambda-0', exitCode: 0, ran: true },
      { name: 'lambda-1', exitCode: 0, ran: true },
      { name: 'agent', exitCode: 0, ran: true },
    ]);
    expect(events.indexOf('task-0/agent exited 0')).toBeLessThan(events.indexOf('task-0/lambda-0 exited 0'));
  }, 300_000);
});
