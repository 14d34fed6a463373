// Task metrics as CloudWatch EMF: what the agent measures per attempt, and the lines one flush writes.
import { applyOverrides, compileConfig, TASK_METRICS } from '../../../lib/core';
import type { Invocation, InvokeResult, WorkerInvoker } from '../../../lib/ports';
import { TaskOutcomeMetrics, type AttemptMeasure } from '../../../lib/runtime/agent';
import { collect, gridForEachTest } from '../../support/local-grid';

/** Parses EMF lines and checks each against the format's rules (a metric's values: a number or up to 100). */
function parseEmf(lines: string[]): any[] {
  return lines.map((line) => {
    const doc = JSON.parse(line);
    const directive = doc._aws.CloudWatchMetrics[0];
    expect(doc._aws.Timestamp).toBe(1_700_000_000_000);
    expect(directive.Namespace).toBe('HtcGrid/test');
    for (const dimensionSet of directive.Dimensions) for (const d of dimensionSet) expect(typeof doc[d]).toBe('string');
    for (const metric of directive.Metrics) {
      const value = doc[metric.Name];
      if (Array.isArray(value)) expect(value.length).toBeLessThanOrEqual(100);
      else expect(typeof value).toBe('number');
    }
    return doc;
  });
}

function metrics(options: { maxSamples?: number; maxErrorTypes?: number } = {}): TaskOutcomeMetrics {
  let seed = 1;
  return new TaskOutcomeMetrics({
    namespace: 'HtcGrid/test',
    clock: () => 1_700_000_000_000,
    random: () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646,
    ...options,
  });
}

describe('task outcome metrics as EMF', () => {
  it('writes retries, every queued and run time, and failed attempts per error type, then starts over', () => {
    const m = metrics();
    m.add({ outcome: 'succeeded', queuedMs: 10, runMs: 100 });
    m.add({ outcome: 'retry', errorType: 'MarketDataError', queuedMs: 20, runMs: 200 });
    m.add({ outcome: 'failed', errorType: 'PricingError', queuedMs: 30, runMs: 300 });
    m.add({ outcome: 'failed', errorType: 'PricingError', queuedMs: 40, runMs: 400 });
    m.add({ outcome: 'released', queuedMs: 999, runMs: 999 });

    const docs = parseEmf(m.flush());

    expect(docs[0]).toMatchObject({
      [TASK_METRICS.retried]: 1,
      [TASK_METRICS.queuedTime]: [10, 20, 30, 40],
      [TASK_METRICS.runTime]: [100, 200, 300, 400],
    });
    expect(docs[0]._aws.CloudWatchMetrics[0].Dimensions).toEqual([[]]);
    const byType = docs.slice(1).map((d) => [d[TASK_METRICS.errorTypeDimension], d[TASK_METRICS.failedAttempts]]);
    expect(byType).toEqual([
      ['MarketDataError', 1],
      ['PricingError', 2],
    ]);
    expect(m.flush()).toEqual([]);
  });

  it('keeps memory bounded: a sample of the times, 100 values a line, and error types beyond the cap as Other', () => {
    const m = metrics({ maxSamples: 250, maxErrorTypes: 2 });
    for (let i = 0; i < 10_000; i++) m.add({ outcome: 'failed', errorType: `E${i % 5}`, queuedMs: i, runMs: i });

    const docs = parseEmf(m.flush());

    const times = docs.filter((d) => TASK_METRICS.queuedTime in d);
    expect(times.map((d) => d[TASK_METRICS.queuedTime].length)).toEqual([100, 100, 50]);
    const sample = times.flatMap((d) => d[TASK_METRICS.queuedTime]);
    // A uniform sample of 0..9999: its median is near 5000, not the first values seen.
    expect(sample.sort((a: number, b: number) => a - b)[125]).toBeGreaterThan(3000);
    const byType = Object.fromEntries(
      docs.filter((d) => TASK_METRICS.failedAttempts in d).map((d) => [d.ErrorType, d[TASK_METRICS.failedAttempts]]),
    );
    expect(byType).toEqual({ E0: 2000, E1: 2000, Other: 6000 });
  });
});

/** Fails tasks whose event has `"fail": true` with a PricingError; answers the others with their event. */
class ScriptedInvoker implements WorkerInvoker {
  async start(): Promise<void> {}
  async invoke(invocation: Invocation): Promise<InvokeResult> {
    // At least 5 ms by Date.now(), the agent's clock: a 5 ms timer can fire when Date.now() has moved only 4.
    const start = Date.now();
    while (Date.now() - start < 5) await new Promise((resolve) => setTimeout(resolve, 5 - (Date.now() - start)));
    if ((JSON.parse(invocation.eventJson) as { fail?: boolean }).fail) {
      return { ok: false, reason: 'error', error: { type: 'PricingError', message: 'no model', stack: [] } };
    }
    return { ok: true, resultJson: invocation.eventJson };
  }
  async close(): Promise<void> {}
}

describe('the agent', () => {
  const each = gridForEachTest();

  it('measures each recorded attempt: its outcome, error type, time queued and time from claim to end', async () => {
    const measures: AttemptMeasure[] = [];
    await each.startAgent({
      config: compileConfig(applyOverrides({ slots: 1 }, {}), 'test'),
      receiveWaitMs: 50,
      createInvoker: () => new ScriptedInvoker(),
      onAttemptMeasured: (m) => measures.push(m),
    });
    const handle = await each.grid().client.submit([{ i: 0 }, { fail: true }]);
    const results = await collect(handle.results({ pollIntervalMs: 5 }));
    expect(results.map((r) => r.state)).toEqual(['succeeded', 'failed']);

    // Three attempts (the default): two retried, the last one failed.
    expect(measures.map((m) => [m.outcome, m.errorType]).sort()).toEqual([
      ['failed', 'PricingError'],
      ['retry', 'PricingError'],
      ['retry', 'PricingError'],
      ['succeeded', undefined],
    ]);
    for (const m of measures) {
      expect(m.queuedMs).toBeGreaterThanOrEqual(0);
      expect(m.runMs).toBeGreaterThanOrEqual(5);
    }
  });
});
