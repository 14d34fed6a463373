// The agent's stats line: what the stack's log metric filters turn into TasksSucceeded and TasksFailed.
import { Writable } from 'node:stream';
import pino from 'pino';
import { reportAgentStats } from '../../bin/agent-stats';
import type { AgentStats } from '../../lib/runtime/agent';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return {
    logger: pino({}, sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const stats = (): AgentStats => ({ claimed: 0, succeeded: 0, failed: 0, retried: 0, released: 0, dropped: 0 });

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

describe('the agent’s stats line', () => {
  it('logs, each interval, the tasks that finished since the last line, as the metric filters read them', () => {
    const s = stats();
    const { logger, lines } = capture();
    const stop = reportAgentStats(s, logger, 60_000);

    s.succeeded = 5;
    s.failed = 1;
    jest.advanceTimersByTime(60_000);
    s.succeeded = 12;
    jest.advanceTimersByTime(60_000);
    stop();

    expect(lines().map(({ event, succeeded, failed, retried }) => ({ event, succeeded, failed, retried }))).toEqual([
      { event: 'agent-stats', succeeded: 5, failed: 1, retried: 0 },
      { event: 'agent-stats', succeeded: 7, failed: 0, retried: 0 },
    ]);
  });

  it('writes nothing while nothing finishes, and flushes what is left when the agent stops', () => {
    const s = stats();
    const { logger, lines } = capture();
    const stop = reportAgentStats(s, logger, 60_000);

    jest.advanceTimersByTime(180_000);
    expect(lines()).toEqual([]);
    s.retried = 2;
    stop();
    jest.advanceTimersByTime(120_000);

    expect(lines().map((l) => [l.event, l.retried])).toEqual([['agent-stats', 2]]);
  });
});
