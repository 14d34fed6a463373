// Cancelling or timing out a task through RieInvoker against a lambda-rie stand-in process: does the handler stop?
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Invocation, InvokeResult } from '../../../lib/ports';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../../lib/runtime/local';
import { RieInvoker, RuntimeKiller, type RieInvokerOptions, type RuntimeKillOutcome } from '../../../lib/runtime/rie';
import { RieServer } from '../../../twin/stand-ins/rie-server';
import { freePort } from '../../support/emulators';
import { waitFor } from '../../support/local-grid';
import { buildSlotFixtures, isAlive, startSlot, type SlotFixtures, type SlotProcess } from './slot-processes';

const FAULT_WORKER = path.resolve(__dirname, '..', '..', 'fixtures', 'faults', 'worker');
const HANDLER = 'lambda_function.lambda_handler';

let fixtures: SlotFixtures;
let pidDir: string;
const opened: { close(): Promise<void> }[] = [];
const slots: SlotProcess[] = [];

beforeAll(() => {
  fixtures = buildSlotFixtures();
});

afterAll(() => fixtures.remove());

beforeEach(() => {
  pidDir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-rie-abort-'));
});

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
  for (const s of slots.splice(0)) await s.stop();
  fs.rmSync(pidDir, { recursive: true, force: true });
});

/** One slot as in ECS: a lambda-rie stand-in process running the fault worker in a Python child. */
async function slot(): Promise<SlotProcess> {
  const s = await startSlot(fixtures, await freePort(), [FAULT_WORKER, HANDLER]);
  slots.push(s);
  return s;
}

function invoker(port: number, options: Partial<RieInvokerOptions> = {}): RieInvoker {
  const rie = new RieInvoker({ endpoint: `http://127.0.0.1:${port}`, startTimeoutMs: 10_000, ...options });
  opened.push(rie);
  return rie;
}

let counter = 0;
function invocation(event: Record<string, unknown>, timeoutMs = 30_000): Invocation {
  counter++;
  return {
    requestId: `req-${counter}`,
    taskId: `sess-abort_${counter}`,
    sessionId: 'sess-abort',
    attempt: 1,
    eventJson: JSON.stringify({ pid_dir: pidDir, ...event }),
    deadline: Date.now() + timeoutMs,
  };
}

/** The pid of the Python process running `inv`, once its handler has started. */
async function handlerPid(inv: Invocation): Promise<number> {
  const file = path.join(pidDir, `${inv.taskId}.${inv.attempt}.pid`);
  await waitFor(() => fs.existsSync(file), 20_000, `the handler of ${inv.taskId} to start`);
  return Number(fs.readFileSync(file, 'utf8'));
}

function failure(result: InvokeResult) {
  if (result.ok) throw new Error(`expected a failure, got ${result.resultJson}`);
  return result;
}

/** Starts a one-minute task, waits until its handler runs, then aborts it; returns the result and the handler pid. */
async function cancelRunningTask(rie: RieInvoker): Promise<{ result: InvokeResult; pid: number }> {
  const controller = new AbortController();
  const inv = invocation({ sleep: 60 });
  const running = rie.invoke(inv, controller.signal);
  const pid = await handlerPid(inv);
  controller.abort(new Error('task cancelled'));
  return { result: await running, pid };
}

describe('RieInvoker aborting an invocation on lambda-rie (a stand-in process that lets handlers run on)', () => {
  it('without killRuntimeOnAbort, a cancelled handler runs on and the slot answers busy (the HTC-Grid bug)', async () => {
    const s = await slot();
    const rie = invoker(s.port);

    const { result, pid } = await cancelRunningTask(rie);
    const next = failure(await rie.invoke(invocation({})));

    expect(failure(result).reason).toBe('cancelled');
    expect(isAlive(pid)).toBe(true);
    expect(next.reason).toBe('busy');
  });

  it('with killRuntimeOnAbort, a cancel stops the Python handler and the next task runs on a fresh runtime', async () => {
    const s = await slot();
    const rie = invoker(s.port, { killRuntimeOnAbort: true });

    const { result, pid } = await cancelRunningTask(rie);
    await waitFor(() => !isAlive(pid), 5_000, `the cancelled handler (pid ${pid}) to be gone`);
    const nextInv = invocation({});
    const next = await rie.invoke(nextInv);

    expect(failure(result)).toMatchObject({
      reason: 'cancelled',
      error: { message: expect.stringContaining('task cancelled') },
    });
    expect(next.ok).toBe(true);
    expect(await handlerPid(nextInv)).not.toBe(pid);
    expect(isAlive(s.pid)).toBe(true);
  });

  it("with killRuntimeOnAbort, a task that reaches the agent's deadline is stopped as well", async () => {
    const s = await slot();
    const rie = invoker(s.port, { killRuntimeOnAbort: true });
    const inv = invocation({ sleep: 60 }, 3_000);

    const result = failure(await rie.invoke(inv));
    const pid = await handlerPid(inv);
    await waitFor(() => !isAlive(pid), 5_000, `the timed-out handler (pid ${pid}) to be gone`);
    const next = await rie.invoke(invocation({}));

    expect(result.reason).toBe('timeout');
    expect(next.ok).toBe(true);
  });

  it('kills again when lambda-rie has not answered a second after a kill (it restarts a runtime killed in its init)', async () => {
    const s = await slot();
    const real = new RuntimeKiller({ port: s.port });
    let calls = 0;
    // The first kill finds nothing, as when lambda-rie has just replaced a runtime killed during its init.
    const missesFirst = {
      kill: async (): Promise<RuntimeKillOutcome> => {
        calls++;
        return calls === 1 ? { kind: 'no-runtime', riePids: [s.pid] } : real.kill();
      },
    };
    const rie = invoker(s.port, { killRuntimeOnAbort: true, runtimeKiller: missesFirst });

    const { result, pid } = await cancelRunningTask(rie);
    await waitFor(() => !isAlive(pid), 5_000, `the cancelled handler (pid ${pid}) to be gone`);
    const next = await rie.invoke(invocation({}));

    expect(failure(result).reason).toBe('cancelled');
    expect(calls).toBe(2);
    expect(next.ok).toBe(true);
  });

  it('when no lambda-rie is visible to kill, the cancel still comes back at once, is logged, and the slot goes on', async () => {
    // The in-process RieServer is no process of its own: the killer finds nothing for its port, as in an ECS task
    // without pidMode: task.
    const server = await RieServer.start({
      invoker: createLocalInvoker({
        taskRoot: FAULT_WORKER,
        handler: HANDLER,
        runtime: resolveRuntime('python3.12'),
        pythonExecutable: 'python3',
      }),
    });
    opened.push(server);
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const rie = invoker(server.port, { killRuntimeOnAbort: true, logger });

    const { result } = await cancelRunningTask(rie);
    await waitFor(() => lines.some((l) => l.includes('could not be stopped')), 5_000, 'the warning');
    const next = await rie.invoke(invocation({}));

    expect(failure(result).reason).toBe('cancelled');
    expect(lines.join('')).toMatch(
      /cannot stop the Lambda runtime: no process with --runtime-interface-emulator-address/,
    );
    expect(next.ok).toBe(true);
  });
});
