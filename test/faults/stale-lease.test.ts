// An agent whose heartbeats never reach the table (a partition no emulator produces, so its table drops them): its
// lease lapses, another agent takes the task over, and the late result of the first is rejected, never recorded.
import fs from 'node:fs';
import path from 'node:path';
import type { LeaseRef, LeaseStatus, TaskTable } from '../../lib/ports';
import { prepareTaskRoot } from '../../lib/packaging';
import { Agent } from '../../lib/runtime/agent';
import { createLocalInvoker } from '../../lib/runtime/local';
import { collect, startTestGrid, tempDir, waitFor, type TestGrid } from '../support/local-grid';
import { FAST_LEASES, FAULT_WORKER, executions, faultConfig, outcomes, runtimePidOf } from './fault-helpers';

/** The grid's own table, except that heartbeats and lease reads silently report the lease as still held. */
function partitioned(table: TaskTable): TaskTable {
  const held = (leases: readonly LeaseRef[]): Promise<LeaseStatus[]> =>
    Promise.resolve(leases.map((): LeaseStatus => 'held'));
  return Object.assign(Object.create(table) as TaskTable, { extendLeases: held, leaseStatus: held });
}

describe('an agent whose heartbeats do not get through', () => {
  const grids: TestGrid[] = [];
  let cut: Agent | undefined;
  afterEach(async () => {
    await cut?.stop(0);
    for (const grid of grids.splice(0)) await grid.close(0);
  });

  it('has its late result rejected while the new holder’s result is kept', async () => {
    const dir = tempDir('htcgrid-faults-grid-');
    const logDir = tempDir('htcgrid-faults-log-');
    const pidDir = tempDir('htcgrid-faults-pid-');
    const config = faultConfig();
    const clientGrid = await startTestGrid(undefined, FAST_LEASES, dir);
    grids.push(clientGrid);
    const { taskRoot } = await prepareTaskRoot(FAULT_WORKER, path.join(tempDir('htcgrid-faults-root-'), 'worker'));
    const late: string[] = [];
    cut = new Agent({
      config,
      table: partitioned(clientGrid.backends.table),
      queue: clientGrid.backends.queue,
      intake: clientGrid.backends.intake,
      store: clientGrid.backends.store,
      owner: 'partitioned-agent',
      // One task at a time and nothing claimed ahead: the re-queued task must go to the healthy agent.
      slots: 1,
      prefetch: 0,
      createInvoker: (slot) =>
        createLocalInvoker({ taskRoot, handler: config.handler, runtime: config.runtime, slotIndex: slot }),
      onAttemptRecorded: (taskId, outcome, status) => late.push(`${taskId} ${outcome} ${status}`),
    });
    await cut.start();
    const gate = path.join(pidDir, 'open');
    const handle = await clientGrid.client.submit([{ wait_file_on: { '1': gate }, log_dir: logDir, pid_dir: pidDir }]);
    const taskId = `${handle.sessionId}_0`;
    await runtimePidOf(pidDir, taskId, 1);

    // A healthy agent with its reaper on the same database: it finds the lapsed lease and runs attempt 2.
    const healthy = await startTestGrid(FAULT_WORKER, FAST_LEASES, dir);
    grids.push(healthy);
    const [result] = await collect(handle.results());
    // Only now does attempt 1 return, to an agent that still believes it holds the task.
    fs.writeFileSync(gate, '');
    await waitFor(() => late.length > 0, 10_000, 'the partitioned agent to finish attempt 1');
    const task = await clientGrid.backends.table.getTask(taskId);

    expect(late).toEqual([`${taskId} succeeded stale`]);
    expect(outcomes(result!)).toEqual(['lease-expired', 'succeeded']);
    expect(result!.history.map((h) => h.owner)).toEqual(['partitioned-agent', healthy.agent!.owner]);
    expect(result!.result).toMatchObject({ attempt: 2 });
    expect(task).toMatchObject({ state: 'succeeded', attempt: 2, result: { inline: result!.resultJson } });
    expect(task!.history).toHaveLength(2);
    expect(executions(logDir).get(taskId)).toBe(2);
  });
});
