// The task table's key encodings and the back-off policy: pure functions, no emulator.
import { backoffDelay, isDefiniteRefusal, isRetryableAwsError, withRetry } from '../../../lib/backends/aws/aws-retry';
import {
  leaseShardOf,
  LEASE_SHARDS,
  manifestCountOf,
  manifestSessionSk,
  parseTerminalSessionSk,
  sessionPartitionOf,
  sessionPartitions,
  sessionShardsFor,
  terminalSessionSk,
} from '../../../lib/backends/aws/table-schema';
import { TransientServiceError } from '../../../lib/core/errors';

describe('terminal sort keys', () => {
  it('order by finish time, then by the writer sequence, whatever the task ids', () => {
    const keys = [
      terminalSessionSk(2_000, 's_1', 'succeeded', 1),
      terminalSessionSk(1_000, 's_10', 'failed', 7),
      terminalSessionSk(1_000, 's_2', 'cancelled', 8),
      terminalSessionSk(10_000, 's_0', 'succeeded', 0),
    ];

    expect([...keys].sort()).toEqual([keys[1], keys[2], keys[0], keys[3]]);
  });

  it('round-trip their time, sequence, state and task id', () => {
    const sk = terminalSessionSk(1_700_000_000_123, 'sess#with#hashes_4', 'failed', 42);

    expect(parseTerminalSessionSk(sk)).toEqual({
      finishedAt: 1_700_000_000_123,
      seq: 42,
      state: 'failed',
      taskId: 'sess#with#hashes_4',
    });
    expect(parseTerminalSessionSk('L#sess_4')).toBeUndefined();
  });
});

describe('session-index partitions', () => {
  it('are sized by the expected tasks, one per 5,000, from 1 to 16, and 4 when the size is unknown', () => {
    expect([0, 3, 5_000, 5_001, 40_000, 10_000_000].map(sessionShardsFor)).toEqual([1, 1, 1, 2, 8, 16]);
    expect(sessionShardsFor(undefined)).toBe(4);
  });

  it('put every task of a session in one of its partitions, all of them used', () => {
    const used = new Set(Array.from({ length: 400 }, (_, i) => sessionPartitionOf('s', `s_${i}`, 8)));

    expect([...used].sort()).toEqual(sessionPartitions('s', 8).sort());
  });
});

describe('manifest keys', () => {
  it('carry the number of task ids their manifest lists; other keys have none', () => {
    expect(manifestCountOf(manifestSessionSk('s#1_0', 24))).toBe(24);
    expect(manifestCountOf(terminalSessionSk(1, 's_1', 'succeeded'))).toBeUndefined();
    expect(manifestCountOf('M#broken#x')).toBeUndefined();
  });
});

describe('lease shards', () => {
  it('are stable per task id and spread tasks over every shard', () => {
    const shards = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const shard = leaseShardOf(`session-abc_${i}`);
      shards.set(shard, (shards.get(shard) ?? 0) + 1);
    }

    expect(leaseShardOf('session-abc_7')).toBe(leaseShardOf('session-abc_7'));
    expect(shards.size).toBe(LEASE_SHARDS);
    for (const n of shards.values()) expect(n).toBeGreaterThan(4000 / LEASE_SHARDS / 2);
  });
});

describe('AWS back-off', () => {
  it('grows exponentially under a cap, with full jitter', () => {
    const top = { random: () => 0.999_999, baseDelayMs: 100, maxDelayMs: 1000 };

    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, top))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffDelay(3, { ...top, random: () => 0 })).toBe(0);
  });

  it('retries throttling and 5xx, never a failed condition or a validation error', () => {
    expect(isRetryableAwsError({ name: 'ThrottlingException' })).toBe(true);
    expect(isRetryableAwsError({ name: 'Whatever', $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isRetryableAwsError({ name: 'ConditionalCheckFailedException', $metadata: { httpStatusCode: 400 } })).toBe(
      false,
    );
    expect(isRetryableAwsError({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } })).toBe(false);
  });

  it('retries a write or transaction refused for a transaction under way, never one whose condition failed', () => {
    const cancelled = (...codes: string[]) => ({
      name: 'TransactionCanceledException',
      $metadata: { httpStatusCode: 400 },
      CancellationReasons: codes.map((Code) => ({ Code })),
    });
    expect(isRetryableAwsError({ name: 'TransactionConflictException', $metadata: { httpStatusCode: 400 } })).toBe(
      true,
    );
    expect(isRetryableAwsError(cancelled('None', 'TransactionConflict'))).toBe(true);
    expect(isRetryableAwsError(cancelled('TransactionConflict', 'ConditionalCheckFailed'))).toBe(false);
    expect(isRetryableAwsError(cancelled('ConditionalCheckFailed'))).toBe(false);
  });

  it('retries a transaction cancelled for throttling, and one sent again while its first try is under way', () => {
    const cancelled = (...codes: string[]) => ({
      name: 'TransactionCanceledException',
      $metadata: { httpStatusCode: 400 },
      CancellationReasons: codes.map((Code) => ({ Code })),
    });
    expect(isRetryableAwsError(cancelled('None', 'ThrottlingError'))).toBe(true);
    expect(isRetryableAwsError(cancelled('ProvisionedThroughputExceeded', 'TransactionConflict'))).toBe(true);
    expect(isRetryableAwsError(cancelled('ThrottlingError', 'ValidationError'))).toBe(false);
    expect(isRetryableAwsError(cancelled('None'))).toBe(false);
    expect(isRetryableAwsError({ name: 'TransactionInProgressException', $metadata: { httpStatusCode: 400 } })).toBe(
      true,
    );
  });

  it('takes only a 4xx answer for a write known not to have landed', () => {
    expect(isDefiniteRefusal({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } })).toBe(true);
    expect(isDefiniteRefusal({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } })).toBe(true);
    expect(isDefiniteRefusal({ name: 'TransactionInProgressException', $metadata: { httpStatusCode: 400 } })).toBe(
      false,
    );
    expect(isDefiniteRefusal({ name: 'InternalServerError', $metadata: { httpStatusCode: 500 } })).toBe(false);
    expect(isDefiniteRefusal(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isDefiniteRefusal(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe(false);
  });

  it('gives up after its attempts with a retryable TransientServiceError keeping the cause', async () => {
    const cause = Object.assign(new Error('slow down'), { name: 'SlowDown' });
    let calls = 0;

    const error = await withRetry(
      'S3 PutObject k',
      async () => {
        calls++;
        throw cause;
      },
      { maxAttempts: 3, sleep: async () => undefined },
    ).catch((e: unknown) => e);

    expect(calls).toBe(3);
    expect(error).toBeInstanceOf(TransientServiceError);
    expect((error as TransientServiceError).cause).toBe(cause);
  });
});
