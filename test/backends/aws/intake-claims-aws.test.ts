// The AWS intake's claims on the emulators when DynamoDB fails a claim (faults DynamoDB Local cannot produce, injected
// below the SDK): a claim that fails costs its batch's other claims nothing, its message comes back and is claimed at
// a later receive; a claim whose write landed but whose answer was lost is recognised as claimed by its retry, or by
// the fence that settles a claim none of whose tries was answered (which also shuts out a try still on its way).
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbTaskTable, openAwsBackends, SqsDynamoDbTaskIntake, type AwsBackends } from '../../../lib/backends/aws';
import { newTask, type SessionRecord, type TaskRecord } from '../../../lib/core/task';
import { queueMessageOf, type TaskQueue } from '../../../lib/ports';
import type { UnsettledClaim } from '../../../lib/backends/aws/dynamodb-task-table';
import { reapTasks } from '../../../lib/runtime/reaper';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';

const suite = useEmulators();

const intakeOptions = { waitMs: 1_000, visibilityMs: 30_000, owner: 'agent', leaseMs: 30_000, busyDelayMs: 1_000 };

/**
 * What happens to each UpdateItem on a task's item, in turn, until the plan runs out (then they go through):
 * `refused` is answered 503 without reaching DynamoDB Local; `lost` reaches it (the write is applied) and its answer
 * is replaced by a 503; `late` times out at the client and is kept, to reach DynamoDB Local when the test says
 * (`deliverLate`: a try the network held past its timeout, applied after the client gave up on it); `hung` is
 * answered 503 only when the fault stops (a request the service does not answer). The SDK and the table retry them.
 */
type UpdateFault = 'refused' | 'lost' | 'late' | 'hung';

/**
 * What `plan` is told of an UpdateItem: whether it is a claim's (not a fence's, an extension's, a completion's), or a
 * withdrawal's (see `DynamoDbTaskTable.withdrawClaims`).
 */
interface UpdateSeen {
  readonly claim: boolean;
  readonly withdrawal: boolean;
}

/** Applies `plan` to the UpdateItems on `taskId`'s item (see `UpdateFault`); other requests go through. */
function faultUpdatesOf(
  client: DynamoDBClient,
  taskId: string,
  plan: (update: UpdateSeen) => UpdateFault | undefined,
): { readonly faulted: () => number; stop(): void; deliverLate(): Promise<void> } {
  const inner = client.config.requestHandler as unknown as {
    handle: (request: unknown, options?: unknown) => Promise<unknown>;
  };
  const handle = inner.handle;
  let faulted = 0;
  const late: unknown[] = [];
  const hung: (() => void)[] = [];
  const unavailable = () =>
    Object.assign(new Error('Service Unavailable'), {
      name: 'ServiceUnavailable',
      $fault: 'server',
      $metadata: { httpStatusCode: 503 },
    });
  inner.handle = async (request: unknown, options?: unknown) => {
    const { headers, body } = request as { headers?: Record<string, string>; body?: unknown };
    const text = typeof body === 'string' ? body : body instanceof Uint8Array ? new TextDecoder().decode(body) : '{}';
    const update = JSON.parse(text) as { Key?: { task_id?: { S?: string } }; UpdateExpression?: string };
    const claim = update.UpdateExpression?.startsWith('SET #state = :running') === true;
    const withdrawal = update.UpdateExpression?.startsWith('SET #state = :pending') === true;
    const fault =
      headers?.['x-amz-target']?.endsWith('.UpdateItem') && update.Key?.task_id?.S === taskId
        ? plan({ claim, withdrawal })
        : undefined;
    if (fault === undefined) return handle.call(inner, request, options ?? {});
    faulted++;
    if (fault === 'late') {
      late.push(request);
      throw Object.assign(new Error('socket timed out'), { name: 'TimeoutError', $metadata: {} });
    }
    if (fault === 'lost') drop(await handle.call(inner, request, options ?? {}));
    if (fault === 'hung') await new Promise<void>((resolve) => hung.push(resolve));
    throw unavailable();
  };
  return {
    faulted: () => faulted,
    stop: () => {
      inner.handle = handle;
      for (const answer of hung.splice(0)) answer();
    },
    deliverLate: async () => {
      for (const request of late.splice(0)) drop(await handle.call(inner, request, {}));
    },
  };
}

/** Reads and drops an answer nobody gets, freeing its connection for the next request. */
function drop(answer: unknown): void {
  (answer as { response?: { body?: { resume?: () => void } } }).response?.body?.resume?.();
}

/** The faults of `plan` in turn, then none. */
function inTurn(...plan: UpdateFault[]): () => UpdateFault | undefined {
  return () => plan.shift();
}

/** A table on the emulators' DynamoDB whose own retries do not pause (the tests need the faults, not their timing). */
function tableOn(tableName: string): { table: DynamoDbTaskTable; client: DynamoDBClient } {
  const client = suite.emulators.clients().dynamodb;
  const table = new DynamoDbTaskTable({ tableName, client, retry: { sleep: async () => {} } });
  suite.closeAfterTest({ close: async () => client.destroy() });
  return { table, client };
}

/** A session of `count` tasks with one attempt each (a claim lost under a lease would fail them without running). */
async function oneAttemptTasks(backends: AwsBackends, count: number, maxAttempts = 1): Promise<TaskRecord[]> {
  const session: SessionRecord = {
    sessionId: `claims-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`,
    createdAt: Date.now(),
    priority: 0,
    maxAttempts,
    timeoutMs: 60_000,
    nonRetryableErrorTypes: [],
  };
  const tasks = Array.from({ length: count }, (_, i) => newTask(session, i, { inline: '{}' }, Date.now()));
  await backends.table.createSealedSession(session, tasks);
  return tasks;
}

/** A grid on the emulators with a sealed session of tasks, and a table on it to inject faults below. */
interface GridWithTasks {
  readonly backends: AwsBackends;
  /** A table whose own retries do not pause (`tableOn`). */
  readonly table: DynamoDbTaskTable;
  /** `table`'s client, to inject faults on (`faultUpdatesOf`). */
  readonly client: DynamoDBClient;
  /** The session's tasks (see `oneAttemptTasks`). */
  readonly tasks: TaskRecord[];
  /** Another table on the same DynamoDB table (another agent's, or this one's after a restart). */
  anotherTable(): DynamoDbTaskTable;
}

/** New grid resources on the emulators holding a sealed session of `count` tasks of `maxAttempts` attempts. */
async function gridWithTasks(
  count: number,
  maxAttempts = 1,
  queueOptions: { maxReceiveCount?: number } = {},
): Promise<GridWithTasks> {
  const resources = await createGridResources(suite.emulators, queueOptions);
  const backends = suite.backendsFor(resources);
  const { table, client } = tableOn(resources.tableName);
  const tasks = await oneAttemptTasks(backends, count, maxAttempts);
  return { backends, table, client, tasks, anotherTable: () => tableOn(resources.tableName).table };
}

/** Sends a message of each of `tasks` and returns an intake on `table` that receives them through a `recordingQueue`. */
async function intakeOfMessages(
  { backends, table }: GridWithTasks,
  tasks: readonly TaskRecord[],
): Promise<ReturnType<typeof recordingQueue> & { intake: SqsDynamoDbTaskIntake }> {
  await backends.queue.send(tasks.map(queueMessageOf));
  const recording = recordingQueue(backends.queue);
  return { ...recording, intake: new SqsDynamoDbTaskIntake({ queue: recording.queue, table }) };
}

/**
 * Another agent (its own intake, on a table of its own) receiving from the grid's queue until a message comes, with
 * `options` over `intakeOptions`: the messages it received (task id and receive count), the tasks it claimed, and its
 * intake.
 */
async function receiveAsAnotherAgent(
  grid: GridWithTasks,
  options: Partial<typeof intakeOptions>,
): Promise<{ received: [string, number][]; taken: TaskRecord[]; intake: SqsDynamoDbTaskIntake }> {
  const { queue, received } = recordingQueue(grid.backends.queue);
  const intake = new SqsDynamoDbTaskIntake({ queue, table: grid.anotherTable() });
  const taken: TaskRecord[] = [];
  while (received.length === 0) taken.push(...(await intake.receiveAndClaim(10, { ...intakeOptions, ...options })));
  return { received, taken, intake };
}

/** `queue` recording what it receives (task id and receive count) and the receipts it deletes. */
function recordingQueue(queue: TaskQueue): {
  queue: TaskQueue;
  received: [string, number][];
  acked: string[];
  released: string[];
} {
  const received: [string, number][] = [];
  const acked: string[] = [];
  const released: string[] = [];
  return {
    received,
    acked,
    released,
    queue: {
      send: (messages) => queue.send(messages),
      receive: async (max, options) => {
        const messages = await queue.receive(max, options);
        received.push(...messages.map((m): [string, number] => [m.message.taskId, m.receiveCount]));
        return messages;
      },
      ack: async (receipts) => {
        acked.push(...receipts);
        return queue.ack(receipts);
      },
      release: async (receipts, delayMs) => {
        released.push(...receipts);
        return queue.release(receipts, delayMs);
      },
      extend: (receipts, visibilityMs) => queue.extend(receipts, visibilityMs),
      // The backends close the queue after the test.
      close: async () => undefined,
    },
  };
}

/** The attempts the SDK client makes of a request (its retry strategy's maxAttempts). */
/** Records attempt `attempt` of task `id`, held by `owner`, as succeeded; returns the table's answer. */
function completeAttempt(
  table: DynamoDbTaskTable,
  id: string,
  owner: string,
  attempt: number,
): ReturnType<DynamoDbTaskTable['complete']> {
  return table.complete([
    { taskId: id, guard: { owner, attempt }, outcome: { kind: 'succeeded', result: { inline: '1' } }, at: Date.now() },
  ]);
}

async function sdkMaxAttempts(client: DynamoDBClient): Promise<number> {
  const value = client.config.maxAttempts;
  return typeof value === 'function' ? value() : Number(value);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SqsDynamoDbTaskIntake claims on the AWS emulators', () => {
  it('a claim that fails after its retries costs its siblings nothing: they are handed over claimed, its message comes back and is claimed at the next receive', async () => {
    const grid = await gridWithTasks(3);
    const { table, client, tasks } = grid;
    const failing = tasks[1]!.taskId;
    const { intake, received, acked } = await intakeOfMessages(grid, tasks);
    // Its fence too (see below): the claim stays unsettled, as when DynamoDB keeps failing, and is withdrawn later.
    const fault = faultUpdatesOf(client, failing, () => 'refused');

    const claimed = await intake.receiveAndClaim(10, intakeOptions);

    fault.stop();
    expect(fault.faulted()).toBeGreaterThanOrEqual(8);
    expect(received.map(([id]) => id).sort()).toEqual(tasks.map((t) => t.taskId).sort());
    const others = tasks.filter((t) => t.taskId !== failing).map((t) => t.taskId);
    expect(claimed.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner]).sort()).toEqual(
      others.map((id) => [id, 'running', 1, 'agent']),
    );
    for (const id of others) expect((await table.getTask(id))?.state).toBe('running');
    expect(await table.getTask(failing)).toMatchObject({ state: 'pending', attempt: 0 });
    // The claimed tasks' messages go as usual once their leases guard them.
    for (const task of claimed) intake.leaseExtended(task);
    await intake.drain();
    expect(acked).toHaveLength(2);

    // The unsettled claim's message was held, never deleted, and released once the claim was withdrawn (the drain
    // tried it at the latest): it comes back and its task is claimed.
    received.length = 0;
    const later = await intake.receiveAndClaim(10, { ...intakeOptions, waitMs: 10_000 });

    expect(received).toEqual([[failing, 2]]);
    expect(later.map((t) => [t.taskId, t.state, t.attempt])).toEqual([[failing, 'running', 1]]);
  }, 60_000);
});

describe('a batch none of whose claims succeeded', () => {
  it('rejects and releases the messages of claims that did not land at once; an unsettled one is released once withdrawn', async () => {
    const grid = await gridWithTasks(2);
    const { client, tasks, backends } = grid;
    const [fenced, unsettled] = tasks;
    const first = await intakeOfMessages(grid, tasks);
    // Every claim try is answered 503 (none lands); one claim's fence goes through (failed), the other's is answered
    // 503 too (unsettled). The withdrawal goes through.
    const faults = [
      faultUpdatesOf(client, fenced!.taskId, ({ claim }) => (claim ? 'refused' : undefined)),
      faultUpdatesOf(client, unsettled!.taskId, ({ withdrawal }) => (withdrawal ? undefined : 'refused')),
    ];

    await expect(first.intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow('Service Unavailable');
    // At once, in one request: not after their visibility timeout (30 s).
    expect(first.released).toHaveLength(1);
    const { queue, received } = recordingQueue(backends.queue);
    const other = new SqsDynamoDbTaskIntake({ queue, table: grid.anotherTable() });
    const taken: TaskRecord[] = [];
    for (const until = Date.now() + 10_000; received.length < 2 && Date.now() < until;) {
      taken.push(...(await other.receiveAndClaim(10, { ...intakeOptions, owner: 'b', waitMs: 2_000 })));
    }
    for (const fault of faults.reverse()) fault.stop();

    expect(received.map(([id]) => id)).toEqual([fenced!.taskId, unsettled!.taskId]);
    expect(taken.map((t) => [t.taskId, t.attempt, t.lease?.owner])).toEqual([
      [fenced!.taskId, 1, 'b'],
      [unsettled!.taskId, 1, 'b'],
    ]);
    expect(first.released).toHaveLength(2);
  }, 60_000);
});

describe('a batch none of whose claims succeeded, received again', () => {
  it('is released at once on its first receive only, then left to its visibility timeout (its receives towards the dead-letter queue kept)', async () => {
    const grid = await gridWithTasks(1);
    const { client, tasks } = grid;
    const { intake, received, released } = await intakeOfMessages(grid, tasks);
    // Every claim try is answered 503 (none lands), the fence goes through: failed, at every receive.
    const fault = faultUpdatesOf(client, tasks[0]!.taskId, ({ claim }) => (claim ? 'refused' : undefined));

    await expect(intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow('Service Unavailable');
    await expect(intake.receiveAndClaim(10, { ...intakeOptions, waitMs: 5_000 })).rejects.toThrow(
      'Service Unavailable',
    );
    // Its third receive waits out the visibility timeout (30 s) of the second.
    expect(await intake.receiveAndClaim(10, { ...intakeOptions, waitMs: 3_000 })).toEqual([]);
    fault.stop();

    expect(received.map(([, count]) => count)).toEqual([1, 2]);
    expect(released).toHaveLength(1);
  }, 60_000);
});

describe('a claim whose write landed but whose answer was lost', () => {
  it('is handed over claimed by its retry, its message kept as the lease guard', async () => {
    const grid = await gridWithTasks(1);
    const { table, client, tasks } = grid;
    const [task] = tasks;
    const { intake, acked } = await intakeOfMessages(grid, tasks);
    const fault = faultUpdatesOf(client, task!.taskId, inTurn('lost'));

    const claimed = await intake.receiveAndClaim(10, intakeOptions);

    fault.stop();
    expect(fault.faulted()).toBe(1);
    expect(claimed.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([
      [task!.taskId, 'running', 1, 'agent'],
    ]);
    expect(await table.getTask(task!.taskId)).toMatchObject({
      state: 'running',
      attempt: 1,
      lease: { owner: 'agent' },
    });
    // Its message guards the lease until it is extended, then goes.
    intake.leaseExtended(claimed[0]!);
    await intake.drain();
    expect(acked).toHaveLength(1);
  }, 60_000);

  it('that failed after every try, its fence unanswered too, is withdrawn and claimed afresh at its message next receive', async () => {
    const grid = await gridWithTasks(2);
    const { table, client, tasks } = grid;
    const failing = tasks[1]!.taskId;
    const { intake, received } = await intakeOfMessages(grid, tasks);
    // The first try lands and its answer is lost, every later try (the fence's too) is refused: the claim is
    // unsettled, its write in.
    let tries = 0;
    const fault = faultUpdatesOf(client, failing, () => (tries++ === 0 ? 'lost' : 'refused'));

    const first = await intake.receiveAndClaim(10, intakeOptions);

    fault.stop();
    expect(fault.faulted()).toBeGreaterThanOrEqual(8);
    expect(first.map((t) => t.taskId)).toEqual([tasks[0]!.taskId]);
    expect(await table.getTask(failing)).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent' } });
    received.length = 0;
    const later = await intake.receiveAndClaim(10, { ...intakeOptions, waitMs: 10_000 });

    expect(received).toEqual([[failing, 2]]);
    expect(later.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([
      [failing, 'running', 1, 'agent'],
    ]);
  }, 60_000);

  it('whose every try was answered 503 is settled at once: handed over claimed by the same receive, nothing released, the lease its own', async () => {
    const grid = await gridWithTasks(2);
    const { table, client, tasks } = grid;
    const failing = tasks[1]!.taskId;
    const { intake, received, released } = await intakeOfMessages(grid, tasks);
    // Every try of its claim lands and its answer is lost (the claim fails after its retries); the rest goes through.
    const fault = faultUpdatesOf(client, failing, ({ claim }) => (claim ? 'lost' : undefined));
    const before = Date.now();

    const claimed = await intake.receiveAndClaim(10, intakeOptions);

    fault.stop();
    expect(fault.faulted()).toBeGreaterThanOrEqual(8);
    expect(received.map(([id, count]) => [id, count]).sort()).toEqual(tasks.map((t) => [t.taskId, 1]).sort());
    expect(released).toEqual([]);
    const mine = claimed.find((t) => t.taskId === failing);
    expect(mine).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent' } });
    // Its lease is the one this receive's claim wrote (a full term from now), not one to wait out.
    expect(mine!.lease!.expiresAt).toBeGreaterThanOrEqual(before + intakeOptions.leaseMs);
    expect((await table.getTask(failing))?.lease).toEqual(mine!.lease);
    expect(claimed.map((t) => t.taskId).sort()).toEqual(tasks.map((t) => t.taskId).sort());
  }, 60_000);

  it('none of whose tries landed is fenced: a try the network held, applied later, is refused and another agent claims the task', async () => {
    // A sibling claimed beside it, so the receive hands over what it claimed and releases the failed claim's message.
    const grid = await gridWithTasks(2);
    const { table, client, tasks } = grid;
    const [sibling, task] = tasks;
    const id = task!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    const intake = first.intake;
    // Its first try is held by the network past its timeout, every later one refused 503 (none lands); the fence
    // goes through.
    let tries = 0;
    const fault = faultUpdatesOf(client, id, ({ claim }) => (!claim ? undefined : tries++ === 0 ? 'late' : 'refused'));

    const claimed = await intake.receiveAndClaim(10, intakeOptions);
    fault.stop();
    // Then DynamoDB applies the held try: the fence refuses it.
    await fault.deliverLate();

    expect(tries).toBeGreaterThanOrEqual(8);
    expect(claimed.map((t) => t.taskId)).toEqual([sibling!.taskId]);
    expect(first.released).toHaveLength(1);
    expect(await table.getTask(id)).toMatchObject({ state: 'pending', attempt: 0 });
    // The released message reaches another agent, which claims the task (not busy under a lease nobody runs).
    const { received, taken } = await receiveAsAnotherAgent(grid, { owner: 'b', waitMs: 10_000 });
    expect(received).toEqual([[id, 2]]);
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'b']]);
  }, 60_000);

  it('whose fence landed but whose answer was lost too is unsettled; the next claim, with a new nonce, takes the task over that fence', async () => {
    const { table, client, tasks } = await gridWithTasks(1);
    const [task] = tasks;
    const request = { taskId: task!.taskId, attempt: 0 };
    // No claim try reaches DynamoDB (503); the fence's tries are applied, their answers lost (503): unsettled.
    const fault = faultUpdatesOf(client, task!.taskId, ({ claim }) => (claim ? 'refused' : 'lost'));
    const lease = () => ({ owner: 'agent', expiresAt: Date.now() + 30_000 });
    expect((await table.claimMessages([request], lease(), Date.now())).map((o) => o.status)).toEqual(['unsettled']);
    fault.stop();
    expect(await table.getTask(task!.taskId)).toMatchObject({ state: 'pending', attempt: 0 });

    // Every claim draws its own nonce: the next one is not refused by the first claim's fence (which, reused, it
    // once was: failed, or stale before that, its message deleted and the task left pending with none).
    const next = await table.claimMessages([request], lease(), Date.now());
    expect(next.map((o) => [o.status, o.status === 'claimed' ? o.task.attempt : undefined])).toEqual([['claimed', 1]]);
  }, 60_000);

  it("whose every try was answered 503 is handed over once when its attempt has two messages: the second message's claim, settled too, is not its own", async () => {
    const { table, client, tasks } = await gridWithTasks(1);
    const [task] = tasks;
    const request = { taskId: task!.taskId, attempt: 0 };
    // Every claim try's answer is lost (the one that finds the task taken is refused, its answer lost too).
    const fault = faultUpdatesOf(client, task!.taskId, ({ claim }) => (claim ? 'lost' : undefined));
    const now = Date.now();

    const lease = { owner: 'agent', expiresAt: now + 30_000 };
    const first = await table.claimMessages([request], lease, now);
    const second = await table.claimMessages([request], lease, now);

    fault.stop();
    expect(fault.faulted()).toBeGreaterThanOrEqual(16);
    expect([...first, ...second].map((o) => o.status)).toEqual(['claimed', 'failed']);
    expect(await table.getTask(task!.taskId)).toMatchObject({
      state: 'running',
      attempt: 1,
      lease: { owner: 'agent' },
    });
  }, 60_000);

  it('is handed over once when its attempt has two messages in the batch', async () => {
    const grid = await gridWithTasks(1);
    const [task] = grid.tasks;
    // A duplicate, as a sealed submit's re-send or SQS's at-least-once delivery makes.
    const { intake, received } = await intakeOfMessages(grid, [task!, task!]);
    const fault = faultUpdatesOf(grid.client, task!.taskId, inTurn('lost'));

    const claimed: TaskRecord[] = [];
    while (received.length < 2) claimed.push(...(await intake.receiveAndClaim(10, intakeOptions)));

    fault.stop();
    expect(fault.faulted()).toBe(1);
    expect(claimed.map((t) => [t.taskId, t.attempt])).toEqual([[task!.taskId, 1]]);
  }, 60_000);

  it('whose fence goes unanswered too is withdrawn within seconds, its message held meanwhile: another agent then claims the task, never run by the first', async () => {
    const grid = await gridWithTasks(2);
    const { table, client, tasks } = grid;
    const [sibling, task] = tasks;
    const id = task!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    // Every try of its claim lands with its answer lost, every try of its fence is answered 503: unsettled.
    const fault = faultUpdatesOf(client, id, ({ claim }) => (claim ? 'lost' : 'refused'));

    const claimed = await first.intake.receiveAndClaim(10, intakeOptions);
    fault.stop();

    expect(claimed.map((t) => t.taskId)).toEqual([sibling!.taskId]);
    // Held: neither released (another agent would find the task busy under a lease nobody runs, and reap it at the
    // cost of its only attempt) nor deleted (the task would be left without a message).
    expect(first.released).toEqual([]);
    expect(first.acked).toEqual([]);
    expect(await table.getTask(id)).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent' } });
    // Withdrawn in the background, its message released: another agent claims the task, its first attempt.
    const { received, taken } = await receiveAsAnotherAgent(grid, { owner: 'b', waitMs: 10_000 });
    expect(received).toEqual([[id, 2]]);
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'b']]);
    expect(first.released).toHaveLength(1);
  }, 60_000);

  it('whose fence goes unanswered too and whose try the network held is withdrawn behind a fence: the try, applied later, is refused', async () => {
    const grid = await gridWithTasks(2);
    const { table, client, tasks } = grid;
    const id = tasks[1]!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    // Its first try is held by the network past its timeout, every later one and the fence's refused 503.
    let tries = 0;
    const fault = faultUpdatesOf(client, id, ({ withdrawal }) =>
      withdrawal ? undefined : tries++ === 0 ? 'late' : 'refused',
    );

    await first.intake.receiveAndClaim(10, intakeOptions);
    while (first.released.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    fault.stop();
    // Withdrawn and its message released; then DynamoDB applies the held try: the withdrawal's fence refuses it.
    await fault.deliverLate();

    expect(await table.getTask(id)).toMatchObject({ state: 'pending', attempt: 0 });
    const { taken } = await receiveAsAnotherAgent(grid, { owner: 'b', waitMs: 10_000 });
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'b']]);
  }, 60_000);

  it('left unsettled when its agent stops is withdrawn by the stop: the agent restarted claims the task at once, its first attempt', async () => {
    const grid = await gridWithTasks(2);
    const { client, tasks } = grid;
    const id = tasks[1]!.taskId;
    const { intake } = await intakeOfMessages(grid, tasks);
    const fault = faultUpdatesOf(client, id, ({ claim }) => (claim ? 'lost' : 'refused'));
    await intake.receiveAndClaim(10, intakeOptions);
    fault.stop();

    // The agent stops (its intake drained) and starts again: a new intake and table, the same owner, no memory.
    await intake.drain();
    const { received, taken } = await receiveAsAnotherAgent(grid, { waitMs: 10_000 });

    // Not busy under the lease of a claim nobody remembers, to be reaped once it expired (its only attempt counted).
    expect(received).toEqual([[id, 2]]);
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'agent']]);
  }, 60_000);

  it('that failed, and whose try lands after the next claim took the task, leaves the later lease alone: the task is not reaped under its holder', async () => {
    const grid = await gridWithTasks(1);
    const { table, client, backends } = grid;
    const [task] = grid.tasks;
    const id = task!.taskId;
    const request = [{ taskId: id, attempt: 0 }];
    // Its first try is held by the network past its timeout, every later one (its fence's too) refused: unsettled.
    let tries = 0;
    const fault = faultUpdatesOf(client, id, () => (tries++ === 0 ? 'late' : 'refused'));
    const t0 = Date.now();
    const failed = await table.claimMessages(request, { owner: 'agent', expiresAt: t0 + 200 }, t0);
    fault.stop();
    // The next claim (its message offered again, or a duplicate) takes the task, the agent runs it.
    const t1 = Date.now();
    const next = await table.claimMessages(request, { owner: 'agent', expiresAt: t1 + 60_000 }, t1);

    // Then DynamoDB applies the first claim's held try.
    await fault.deliverLate();

    expect(failed.map((o) => o.status)).toEqual(['unsettled']);
    expect(next.map((o) => o.status)).toEqual(['claimed']);
    expect((await table.getTask(id))?.lease).toEqual({ owner: 'agent', expiresAt: t1 + 60_000 });
    // A duplicate of its message reaching another agent after the first claim's lease would have ended finds the task
    // busy (with that lease moved back: expired, reaped and failed, its holder's result thrown away).
    while (Date.now() <= t0 + 200) await new Promise((resolve) => setTimeout(resolve, 20));
    await backends.queue.send([queueMessageOf(task!)]);
    const { taken: claimed, intake: other } = await receiveAsAnotherAgent(grid, { owner: 'b' });
    await other.drain();
    expect(claimed).toEqual([]);
    expect(await completeAttempt(table, id, 'agent', 1)).toEqual([{ taskId: id, status: 'recorded' }]);
  }, 60_000);
});

describe("a held claim's message that outlived its visibility timeout (DynamoDB failing that long)", () => {
  it("reaped by another agent while the holder's withdrawal lands: the refused reap releases the message, the task is claimed at its next receive", async () => {
    const grid = await gridWithTasks(1, 3);
    const { table, client, tasks, backends } = grid;
    const id = tasks[0]!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    // Agent A: its claim's first try lands with its answer lost, every later write (tries, fence, withdrawals) is
    // answered 503 until the fault stops: unsettled, its message held. Its extensions of the held message fail too
    // (SQS unreachable from it), so the message reappears after its visibility timeout (1 s), under a lease (200 ms)
    // never extended.
    let tries = 0;
    const fault = faultUpdatesOf(client, id, () => (tries++ === 0 ? 'lost' : 'refused'));
    first.queue.extend = () => Promise.reject(new Error('SQS unreachable'));
    await expect(
      first.intake.receiveAndClaim(10, { ...intakeOptions, visibilityMs: 1_000, leaseMs: 200 }),
    ).rejects.toThrow();
    expect(await table.getTask(id)).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent' } });
    await pause(1_200);
    // Agent B receives it: the claim is expired and B reaps it, sending the reap's message (attempt 2), then writing
    // the completion. A's withdrawal lands in between (the fault stops, B's completion waits for A's release).
    const other = recordingQueue(backends.queue);
    const racing: TaskQueue = {
      ...other.queue,
      send: async (messages) => {
        await backends.queue.send(messages);
        fault.stop();
        while (first.released.length === 0) await pause(50);
      },
    };
    const b = new SqsDynamoDbTaskIntake({ queue: racing, table: grid.anotherTable() });
    const takenByB: TaskRecord[] = [];
    while (other.received.length === 0) {
      takenByB.push(...(await b.receiveAndClaim(10, { ...intakeOptions, owner: 'b' })));
    }
    await b.drain();
    await first.intake.drain();
    expect(takenByB).toEqual([]);
    expect(await table.getTask(id)).toMatchObject({ state: 'pending', attempt: 0 });

    // B's reap was refused (stale): its message was released, not deleted; an agent claims the task at its next
    // receive (the reap's message, of attempt 2, is stale and deleted), its first attempt.
    expect(other.acked).toEqual([]);
    const { queue, received } = recordingQueue(backends.queue);
    const c = new SqsDynamoDbTaskIntake({ queue, table: grid.anotherTable() });
    const taken: TaskRecord[] = [];
    for (const until = Date.now() + 10_000; taken.length === 0 && Date.now() < until;) {
      taken.push(...(await c.receiveAndClaim(10, { ...intakeOptions, owner: 'c' })));
    }
    await c.drain();
    expect(received.length).toBeGreaterThan(0);
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'c']]);
  }, 60_000);
});

describe("a held claim's message while DynamoDB fails for longer than its visibility timeout", () => {
  // The SQS emulator counts each visibility change towards the dead-letter queue's maxReceiveCount (SQS does not, see
  // test/support/sqs-emulator.ts, 2.): a limit the extensions of these tests cannot reach.
  const queueOptions = { maxReceiveCount: 50 };

  it('is kept in flight: no other agent receives it; once the claim is withdrawn, another agent claims the task, its only attempt', async () => {
    const grid = await gridWithTasks(1, 1, queueOptions);
    const { table, client, tasks } = grid;
    const id = tasks[0]!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    // The claim's first try lands with its answer lost, every later write (tries, fence, withdrawals) is answered 503
    // until the fault stops: unsettled, its message held, its lease (200 ms) never extended.
    let tries = 0;
    const fault = faultUpdatesOf(client, id, () => (tries++ === 0 ? 'lost' : 'refused'));
    await expect(
      first.intake.receiveAndClaim(10, { ...intakeOptions, visibilityMs: 2_000, leaseMs: 200 }),
    ).rejects.toThrow();
    expect(await table.getTask(id)).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent' } });

    // Another agent receiving for 5 s (2.5 visibility timeouts) gets nothing: it would find the landed try expired
    // and reap it, failing the task without running.
    const { queue, received } = recordingQueue(grid.backends.queue);
    const b = new SqsDynamoDbTaskIntake({ queue, table: grid.anotherTable() });
    const taken: TaskRecord[] = [];
    for (const until = Date.now() + 5_000; Date.now() < until;) {
      taken.push(...(await b.receiveAndClaim(10, { ...intakeOptions, owner: 'b' })));
    }
    expect(received).toEqual([]);

    // DynamoDB answers again: the claim is withdrawn, the message released, the other agent claims the task.
    fault.stop();
    for (const until = Date.now() + 15_000; taken.length === 0 && Date.now() < until;) {
      taken.push(...(await b.receiveAndClaim(10, { ...intakeOptions, owner: 'b' })));
    }
    await b.drain();
    await first.intake.drain();
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'b']]);
  }, 60_000);

  it('another message of the attempt, received by the holder and finding the landed try expired, brings the withdrawal forward instead of reaping it', async () => {
    const grid = await gridWithTasks(1, 1, queueOptions);
    const { table, client, tasks, backends } = grid;
    const [task] = tasks;
    const id = task!.taskId;
    const first = await intakeOfMessages(grid, tasks);
    let tries = 0;
    const fault = faultUpdatesOf(client, id, () => (tries++ === 0 ? 'lost' : 'refused'));
    await expect(first.intake.receiveAndClaim(10, { ...intakeOptions, leaseMs: 200 })).rejects.toThrow();
    fault.stop();
    // A duplicate of the message (SQS delivers at least once), received by the same agent once the landed try's lease
    // (never extended) has expired, before the held claim's withdrawal is due (1 s after the hold).
    await pause(250);
    await backends.queue.send([queueMessageOf(task!)]);
    const taken = await first.intake.receiveAndClaim(10, intakeOptions);

    expect(taken).toEqual([]);
    expect(first.acked).toEqual([]);
    // Not reaped (failed, LeaseExpired, its only attempt): withdrawn, both messages released; the task is claimed.
    for (const until = Date.now() + 15_000; taken.length === 0 && Date.now() < until;) {
      taken.push(...(await first.intake.receiveAndClaim(10, intakeOptions)));
    }
    await first.intake.drain();
    expect(taken.map((t) => [t.taskId, t.state, t.attempt, t.lease?.owner])).toEqual([[id, 'running', 1, 'agent']]);
    expect((await table.getTask(id))?.state).toBe('running');
  }, 60_000);
});

describe('withdrawals of unsettled claims while DynamoDB fails', () => {
  it('are one write each, without the table retries (the intake schedule retries)', async () => {
    const grid = await gridWithTasks(1);
    const { table, client, tasks } = grid;
    const id = tasks[0]!.taskId;
    let withdrawals = 0;
    const fault = faultUpdatesOf(client, id, ({ withdrawal }) => {
      if (withdrawal) withdrawals++;
      return 'refused';
    });
    const [outcome] = await table.claimMessages([{ taskId: id, attempt: 0 }], { owner: 'a', expiresAt: 0 }, 0);
    expect(outcome?.status).toBe('unsettled');

    expect(await table.withdrawClaims([(outcome as { claim: UnsettledClaim }).claim])).toEqual(['unknown']);
    fault.stop();
    // At most the SDK's own attempts (this client's maxAttempts; fewer once its retry quota is spent), not the
    // table's retries of them on top.
    expect(withdrawals).toBeGreaterThanOrEqual(1);
    expect(withdrawals).toBeLessThanOrEqual(await sdkMaxAttempts(client));
  }, 60_000);

  it('are never more than maxUnsettledClaims: a receive takes no more messages than there is room for', async () => {
    const grid = await gridWithTasks(3);
    const { backends, table, client, tasks } = grid;
    await backends.queue.send(tasks.map(queueMessageOf));
    const { queue, received } = recordingQueue(backends.queue);
    const intake = new SqsDynamoDbTaskIntake({ queue, table, maxUnsettledClaims: 2 });
    // Every write on the three tasks answered 503: each claim received is left unsettled, its message held.
    const faults = tasks.map((t) => faultUpdatesOf(client, t.taskId, () => 'refused'));

    await expect(intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow();
    const first = received.length;
    await expect(intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow();
    for (const fault of faults.reverse()) fault.stop();
    await intake.drain();

    expect(first).toBeGreaterThanOrEqual(1);
    expect(received.length).toBeLessThanOrEqual(2);
  }, 60_000);

  it("by a stopping agent's drain end when its grace ends, the service not answering", async () => {
    const grid = await gridWithTasks(1);
    const { client, tasks } = grid;
    const first = await intakeOfMessages(grid, tasks);
    const fault = faultUpdatesOf(client, tasks[0]!.taskId, ({ claim, withdrawal }) =>
      withdrawal ? 'hung' : claim ? 'lost' : 'refused',
    );
    await expect(first.intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow();

    // The drain's withdrawal is not answered; the grace ends: the drain ends (a drain waiting on it never would).
    const grace = new AbortController();
    const drained = first.intake.drain(grace.signal);
    grace.abort();
    await drained;
    expect(fault.faulted()).toBeGreaterThan(0);
    fault.stop();
  }, 60_000);

  it('stop when the backends close: no background withdrawal against a closed table', async () => {
    const resources = await createGridResources(suite.emulators);
    const clients = suite.emulators.clients();
    const backends = openAwsBackends(resources, { clients });
    suite.closeAfterTest({
      close: async () => {
        await backends.close();
        for (const c of Object.values(clients)) c.destroy();
      },
    });
    const [task] = await oneAttemptTasks(backends, 1);
    await backends.queue.send([queueMessageOf(task!)]);
    let withdrawals = 0;
    const fault = faultUpdatesOf(clients.dynamodb, task!.taskId, ({ withdrawal }) => {
      if (withdrawal) withdrawals++;
      return 'refused';
    });
    await expect(backends.intake.receiveAndClaim(10, intakeOptions)).rejects.toThrow();

    // Held, its withdrawal due 1 s after the hold; the backends close before.
    await backends.close();
    await pause(2_500);
    fault.stop();
    expect(withdrawals).toBe(0);
  }, 60_000);
});

describe('fences of several claims of one attempt (a set of nonces, see ATTR.claimFences)', () => {
  /**
   * Claim 1 (agent a): its first try held by the network past its timeout, later tries answered 503, its fence
   * through: failed, fenced. Then `second` (agent b's claim of the same attempt, settled or withdrawn), then claim 1's
   * held try reaches DynamoDB: the task as it leaves it.
   */
  async function heldTryAfter(
    second: (grid: GridWithTasks, request: { taskId: string; attempt: number }[]) => Promise<void>,
  ): Promise<{ after: TaskRecord | undefined; grid: GridWithTasks }> {
    const grid = await gridWithTasks(1);
    const { table, client, tasks } = grid;
    const id = tasks[0]!.taskId;
    const request = [{ taskId: id, attempt: 0 }];
    let tries = 0;
    const fault = faultUpdatesOf(client, id, ({ claim }) => (!claim ? undefined : tries++ === 0 ? 'late' : 'refused'));
    const t0 = Date.now();
    const first = await table.claimMessages(request, { owner: 'a', expiresAt: t0 + 30_000 }, t0);
    fault.stop();
    expect(first.map((o) => o.status)).toEqual(['failed']);
    await second(grid, request);
    expect(await table.getTask(id)).toMatchObject({ state: 'pending', attempt: 0 });
    await fault.deliverLate();
    return { after: await table.getTask(id), grid };
  }

  /** A table of another agent whose client's faults follow `plan` (see `faultUpdatesOf`). */
  function faultyTableOf(grid: GridWithTasks, plan: (update: UpdateSeen) => UpdateFault | undefined) {
    const other = grid.anotherTable();
    const client = (other as unknown as { client: DynamoDBClient }).client;
    return { other, fault: faultUpdatesOf(client, grid.tasks[0]!.taskId, plan) };
  }

  it("a later claim's withdrawal leaves an earlier claim's fence: the earlier claim's held try, applied after it, is refused", async () => {
    const { after } = await heldTryAfter(async (grid, request) => {
      // Claim 2 (agent b): no try answered, its fence 503 too: unsettled; then withdrawn.
      const { other, fault } = faultyTableOf(grid, ({ withdrawal }) => (withdrawal ? undefined : 'refused'));
      const [second] = await other.claimMessages(request, { owner: 'b', expiresAt: Date.now() + 30_000 }, Date.now());
      expect(second?.status).toBe('unsettled');
      expect(await other.withdrawClaims([(second as { claim: UnsettledClaim }).claim])).toEqual(['withdrawn']);
      fault.stop();
    });
    expect(after).toMatchObject({ state: 'pending', attempt: 0 });
  }, 60_000);

  it("a later claim's fence leaves an earlier claim's fence: the earlier claim's held try, applied after it, is refused", async () => {
    const { after } = await heldTryAfter(async (grid, request) => {
      // Claim 2 (agent b): every try answered 503, its fence through: failed, fenced.
      const { other, fault } = faultyTableOf(grid, ({ claim }) => (claim ? 'refused' : undefined));
      const second = await other.claimMessages(request, { owner: 'b', expiresAt: Date.now() + 30_000 }, Date.now());
      fault.stop();
      expect(second.map((o) => o.status)).toEqual(['failed']);
    });
    expect(after).toMatchObject({ state: 'pending', attempt: 0 });
  }, 60_000);

  it("are kept by a claim after them, which takes the task, and cleared by the attempt's completion", async () => {
    const { after, grid } = await heldTryAfter(async (grid, request) => {
      const { other, fault } = faultyTableOf(grid, ({ claim }) => (claim ? 'refused' : undefined));
      await other.claimMessages(request, { owner: 'b', expiresAt: Date.now() + 30_000 }, Date.now());
      fault.stop();
    });
    expect(after).toMatchObject({ state: 'pending', attempt: 0 });
    const { table, client } = grid;
    const id = grid.tasks[0]!.taskId;
    const fencesOf = async () => {
      const tableName = (table as unknown as { tableName: string }).tableName;
      const item = await client.send(new GetItemCommand({ TableName: tableName, Key: { task_id: { S: id } } }));
      return item.Item?.claim_fences?.SS?.length ?? 0;
    };
    expect(await fencesOf()).toBe(2);
    const claimed = await table.claimMessages(
      [{ taskId: id, attempt: 0 }],
      { owner: 'c', expiresAt: Date.now() + 30_000 },
      Date.now(),
    );
    expect(claimed.map((o) => o.status)).toEqual(['claimed']);
    expect(await fencesOf()).toBe(2);
    expect(await completeAttempt(table, id, 'c', 1)).toEqual([{ taskId: id, status: 'recorded' }]);
    expect(await fencesOf()).toBe(0);
  }, 60_000);
});

describe('lease extensions on DynamoDB Local', () => {
  it('never move a lease back: an extension landing after a later one leaves it, and its holder still holds it', async () => {
    const { table, client, tasks } = await gridWithTasks(1);
    const [task] = tasks;
    const id = task!.taskId;
    const now = Date.now();
    await table.claim([{ taskId: id, attempt: 0 }], { owner: 'agent', expiresAt: now + 1_000 }, now);
    const lease = { taskId: id, owner: 'agent', attempt: 1 };
    // A tick's extension whose first try the network holds past its timeout (its retry lands), then a full refresh's
    // later one; then the held try lands.
    const fault = faultUpdatesOf(client, id, inTurn('late'));
    const tick = await table.extendLeases([lease], now + 30_000);
    fault.stop();
    const refreshed = await table.extendLeases([lease], now + 60_000);
    await fault.deliverLate();

    expect(fault.faulted()).toBe(1);
    expect(refreshed).toEqual(['held']);
    expect(tick).toEqual(['held']);
    expect((await table.getTask(id))?.lease).toEqual({ owner: 'agent', expiresAt: now + 60_000 });
    expect(await table.extendLeases([lease], now + 45_000)).toEqual(['held']);
    expect((await table.getTask(id))?.lease).toEqual({ owner: 'agent', expiresAt: now + 60_000 });
    expect(await table.extendLeases([{ ...lease, owner: 'other' }], now + 90_000)).toEqual(['lost']);
  }, 60_000);

  it('put a lease its claim made longer into the lease index all the same', async () => {
    const { table, tasks } = await gridWithTasks(1);
    const [task] = tasks;
    const id = task!.taskId;
    await table.claim([{ taskId: id, attempt: 0 }], { owner: 'agent', expiresAt: 2_000 }, 1);

    expect(await table.extendLeases([{ taskId: id, owner: 'agent', attempt: 1 }], 1_500)).toEqual(['held']);

    const expired = (await table.findExpiredLeases(3_000, 100_000)).map((t) => t.taskId);
    expect(expired).toContain(id);
  }, 60_000);
});

describe('messages of a task whose attempt runs on under a live lease', () => {
  it("a reap's message left over by a late heartbeat is deleted at its first receive, never offered until the dead-letter queue", async () => {
    const { table, backends, tasks } = await gridWithTasks(1, 3);
    const [task] = tasks;
    const id = task!.taskId;
    await backends.queue.send([queueMessageOf(task!)]);
    const holder = new SqsDynamoDbTaskIntake({ queue: backends.queue, table });
    const [held] = await holder.receiveAndClaim(10, { ...intakeOptions, owner: 'agent-a', leaseMs: 100 });
    const lease = { taskId: id, owner: 'agent-a', attempt: 1 };
    // Its heartbeat puts it in the lease index with a short lease (a lease only moves later: claimed shorter), then
    // the holder stalls past it.
    const stalledUntil = Date.now() + 200;
    await table.extendLeases([lease], stalledUntil);
    holder.leaseExtended(held!);
    await holder.drain();
    while (Date.now() <= stalledUntil) await new Promise((resolve) => setTimeout(resolve, 20));
    const expired = (await table.findExpiredLeases(Date.now(), 100_000)).filter((t) => t.taskId === id);
    expect(expired).toHaveLength(1);
    // The reaper sends the task's message, then the holder's late heartbeat lands before the reaper's write.
    const racing: TaskQueue = {
      ...recordingQueue(backends.queue).queue,
      send: async (messages) => {
        await backends.queue.send(messages);
        await table.extendLeases([lease], Date.now() + 60_000);
      },
    };
    const reaped = await reapTasks(expired, { table, queue: racing, now: Date.now() });
    expect(reaped).toEqual({ requeued: 0, failed: 0, skipped: 1 });
    // And a duplicate of the message the attempt was claimed from (a re-send, SQS's at-least-once delivery).
    await backends.queue.send([queueMessageOf(task!)]);
    const { queue, received, acked } = recordingQueue(backends.queue);
    const other = new SqsDynamoDbTaskIntake({ queue, table });

    // Another agent is offered both while the attempt runs on, then waits longer than its busy delay (1 s).
    const claimed: TaskRecord[] = [];
    const receive = async (waitMs: number) =>
      claimed.push(...(await other.receiveAndClaim(10, { ...intakeOptions, owner: 'agent-b', waitMs })));
    for (let tries = 0; tries < 20 && received.length < 2; tries++) await receive(1_000);
    await receive(2_500);
    await other.drain();

    expect(claimed).toEqual([]);
    // Each was received once and deleted: none comes back to count towards the dead-letter queue's limit.
    expect(received.sort()).toEqual([
      [id, 1],
      [id, 1],
    ]);
    expect(acked).toHaveLength(2);
    expect(await table.getTask(id)).toMatchObject({ state: 'running', attempt: 1, lease: { owner: 'agent-a' } });
  }, 60_000);
});
