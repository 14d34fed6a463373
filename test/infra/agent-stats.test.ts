// The agent's stats line: what the stack's log metric filters turn into TasksSucceeded and TasksFailed.
import { Writable } from 'node:stream';
import pino from 'pino';
import { reportAgentStats } from '../../bin/agent-stats';
import { TaskOutcomeMetrics, type AgentStats } from '../../lib/runtime/agent';

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

  it('writes the task metrics as EMF lines at the same times, and once more when the agent stops', () => {
    const metrics = new TaskOutcomeMetrics({ namespace: 'HtcGrid/risk' });
    const written: string[] = [];
    const { logger } = capture();
    const stop = reportAgentStats(stats(), logger, 60_000, { metrics, write: (line) => written.push(line) });

    metrics.add({ outcome: 'succeeded', queuedMs: 12, runMs: 340 });
    jest.advanceTimersByTime(60_000);
    metrics.add({ outcome: 'failed', errorType: 'PricingError', queuedMs: 1, runMs: 2 });
    stop();

    const docs = written.map((l) => JSON.parse(l));
    expect(docs.map((d) => d._aws.CloudWatchMetrics[0].Namespace)).toEqual([
      'HtcGrid/risk',
      'HtcGrid/risk',
      'HtcGrid/risk',
    ]);
    expect(docs[0]).toMatchObject({ TaskQueuedTime: [12], TaskRunTime: [340] });
    expect(docs[2]).toMatchObject({ ErrorType: 'PricingError', TaskAttemptsFailed: 1 });
  });
});
