// The agent's cache of session settings: the session's non-retryable types on top of the grid's, a read failure
// falling back to the grid's list (and asked again next time), and a bounded number of sessions remembered.
import type { SessionRecord } from '../../lib/core';
import { silentLogger } from '../../lib/logging';
import { SessionSettings } from '../../lib/runtime/agent';

function session(sessionId: string, nonRetryableErrorTypes: string[]): SessionRecord {
  return { sessionId, createdAt: 0, priority: 0, maxAttempts: 3, timeoutMs: 1_000, nonRetryableErrorTypes };
}

describe('the session settings an agent reads', () => {
  it('are the grid’s non-retryable types plus the session’s own, read once per session', async () => {
    const reads: string[] = [];
    const settings = new SessionSettings({
      table: {
        getSession: (id) => {
          reads.push(id);
          return Promise.resolve(session(id, ['BadInputError']));
        },
      },
      gridNonRetryable: ['ConfigError'],
      logger: silentLogger(),
    });

    const first = await settings.nonRetryableErrorTypes('s1');
    await settings.nonRetryableErrorTypes('s1');

    expect([...first].sort()).toEqual(['BadInputError', 'ConfigError']);
    expect(reads).toEqual(['s1']);
  });

  it('fall back to the grid’s list when the session cannot be read, and ask again the next time', async () => {
    let fail = true;
    const settings = new SessionSettings({
      table: {
        getSession: (id) =>
          fail ? Promise.reject(new Error('table unavailable')) : Promise.resolve(session(id, ['BadInputError'])),
      },
      gridNonRetryable: ['ConfigError'],
      logger: silentLogger(),
    });

    const during = await settings.nonRetryableErrorTypes('s1');
    fail = false;
    const after = await settings.nonRetryableErrorTypes('s1');

    expect([...during]).toEqual(['ConfigError']);
    expect([...after].sort()).toEqual(['BadInputError', 'ConfigError']);
  });

  it('forget the least recently used session beyond their bound', async () => {
    const reads: string[] = [];
    const settings = new SessionSettings({
      table: {
        getSession: (id) => {
          reads.push(id);
          return Promise.resolve(session(id, []));
        },
      },
      gridNonRetryable: [],
      maxSessions: 2,
      logger: silentLogger(),
    });

    for (const id of ['a', 'b', 'a', 'c', 'a', 'b']) await settings.nonRetryableErrorTypes(id);

    expect(reads).toEqual(['a', 'b', 'c', 'b']);
  });
});
