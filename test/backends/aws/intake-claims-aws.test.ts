// The AWS intake's claims on the emulators when DynamoDB fails one claim of a batch (a fault DynamoDB Local cannot
// produce, injected below the SDK): the batch's other claims are kept and handed over, the failed one's message comes
// back soon and is claimed at a later receive.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbTaskTable, SqsDynamoDbTaskIntake } from '../../../lib/backends/aws';
import { newTask, type SessionRecord } from '../../../lib/core/task';
import { queueMessageOf } from '../../../lib/ports';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';

const suite = useEmulators();

const intakeOptions = { waitMs: 1_000, visibilityMs: 30_000, owner: 'agent', leaseMs: 30_000, busyDelayMs: 1_000 };

/**
 * Answers every UpdateItem on `taskId`'s item with a 503 (which the SDK and the table retry) until `stop()`; counts
 * them. Other requests go through to DynamoDB Local.
 */
function failUpdatesOf(client: DynamoDBClient, taskId: string): { readonly failed: () => number; stop(): void } {
  const inner = client.config.requestHandler as unknown as {
    handle: (request: unknown, options?: unknown) => Promise<unknown>;
  };
  const handle = inner.handle;
  let failed = 0;
  inner.handle = async (request: unknown, options?: unknown) => {
    const { headers, body } = request as { headers?: Record<string, string>; body?: unknown };
    const text = typeof body === 'string' ? body : body instanceof Uint8Array ? new TextDecoder().decode(body) : '{}';
    const key = (JSON.parse(text) as { Key?: { task_id?: { S?: string } } }).Key?.task_id?.S;
    if (headers?.['x-amz-target']?.endsWith('.UpdateItem') && key === taskId) {
      failed++;
      throw Object.assign(new Error('Service Unavailable'), {
        name: 'ServiceUnavailable',
        $fault: 'server',
        $metadata: { httpStatusCode: 503 },
      });
    }
    return handle.call(inner, request, options ?? {});
  };
  return { failed: () => failed, stop: () => void (inner.handle = handle) };
}

describe('SqsDynamoDbTaskIntake claims on the AWS emulators', () => {
  it('a claim that fails after its retries costs its siblings nothing: they are handed over claimed, its message comes back and is claimed at the next receive', async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = suite.backendsFor(resources);
    const client = suite.emulators.clients().dynamodb;
    // No back-off between the table's tries: the test needs the failure, not its timing.
    const table = new DynamoDbTaskTable({ tableName: resources.tableName, client, retry: { sleep: async () => {} } });
    suite.closeAfterTest({ close: async () => client.destroy() });
    const session: SessionRecord = {
      sessionId: `claims-${Date.now().toString(36)}`,
      createdAt: Date.now(),
      priority: 0,
      // One attempt: a claim lost under this agent's lease would fail the task without its ever running.
      maxAttempts: 1,
      timeoutMs: 60_000,
      nonRetryableErrorTypes: [],
    };
    const tasks = [0, 1, 2].map((i) => newTask(session, i, { inline: '{}' }, Date.now()));
    await backends.table.createSealedSession(session, tasks);
    await backends.queue.send(tasks.map(queueMessageOf));
    const failing = tasks[1]!.taskId;
    const received: [string, number][] = [];
    const acked: string[] = [];
    const queue = backends.queue;
    const intake = new SqsDynamoDbTaskIntake({
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
        release: (receipts, delayMs) => queue.release(receipts, delayMs),
        extend: (receipts, visibilityMs) => queue.extend(receipts, visibilityMs),
        // The backends close the queue after the test.
        close: async () => undefined,
      },
      table,
    });
    const fault = failUpdatesOf(client, failing);

    const claimed = await intake.receiveAndClaim(10, intakeOptions);

    fault.stop();
    expect(fault.failed()).toBeGreaterThanOrEqual(8);
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

    // The failed claim's message was released for a second, not deleted: it comes back and its task is claimed.
    received.length = 0;
    const later = await intake.receiveAndClaim(10, { ...intakeOptions, waitMs: 10_000 });

    expect(received).toEqual([[failing, 2]]);
    expect(later.map((t) => [t.taskId, t.state, t.attempt])).toEqual([[failing, 'running', 1]]);
  }, 60_000);
});
