// Task outcomes, time queued and time running, aggregated in the agent and written as CloudWatch EMF log lines.
import { TASK_METRICS } from '../../core/grid-resources';

/** One attempt whose end was recorded, as the agent measured it. */
export interface AttemptMeasure {
  readonly outcome: 'succeeded' | 'failed' | 'retry' | 'released';
  /** The exception type of a failed or retried attempt. */
  readonly errorType?: string;
  /** From the task's submission (or its previous attempt's end) to this attempt's claim. */
  readonly queuedMs?: number;
  /** From the claim to the end of the attempt. */
  readonly runMs?: number;
}

export interface TaskOutcomeMetricsOptions {
  readonly namespace: string;
  /**
   * Values kept per time metric and flush: beyond it, a uniform sample of them (CloudWatch's percentiles come from
   * the values sent). EMF takes at most 100 values per metric and line.
   * @default 500
   */
  readonly maxSamples?: number;
  /** Error types counted apart per flush; the others count as `Other`. @default 20 */
  readonly maxErrorTypes?: number;
  /** @default Date.now */
  readonly clock?: () => number;
  /** @default Math.random */
  readonly random?: () => number;
}

const VALUES_PER_LINE = 100;

/** A uniform sample of at most `size` values (reservoir sampling): memory bounded whatever the task rate. */
class Reservoir {
  values: number[] = [];
  seen = 0;
  constructor(
    private readonly size: number,
    private readonly random: () => number,
  ) {}
  add(value: number): void {
    this.seen++;
    if (this.values.length < this.size) this.values.push(value);
    else {
      const slot = Math.floor(this.random() * this.seen);
      if (slot < this.size) this.values[slot] = value;
    }
  }
}

/**
 * Accumulates attempt measures between flushes; `flush()` returns EMF lines (JSON text, one log event each) and
 * starts over. Memory is bounded by `maxSamples` and `maxErrorTypes`, not by the number of tasks.
 */
export class TaskOutcomeMetrics {
  private retried = 0;
  private queued: Reservoir;
  private run: Reservoir;
  private failures = new Map<string, number>();
  private readonly maxSamples: number;
  private readonly maxErrorTypes: number;
  private readonly clock: () => number;
  private readonly random: () => number;

  constructor(private readonly options: TaskOutcomeMetricsOptions) {
    this.maxSamples = options.maxSamples ?? 500;
    this.maxErrorTypes = options.maxErrorTypes ?? 20;
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
    this.queued = new Reservoir(this.maxSamples, this.random);
    this.run = new Reservoir(this.maxSamples, this.random);
  }

  add(measure: AttemptMeasure): void {
    if (measure.outcome === 'released') return;
    if (measure.outcome === 'retry') this.retried++;
    if (measure.queuedMs !== undefined) this.queued.add(Math.max(0, measure.queuedMs));
    if (measure.runMs !== undefined) this.run.add(Math.max(0, measure.runMs));
    if ((measure.outcome === 'failed' || measure.outcome === 'retry') && measure.errorType !== undefined) {
      const type =
        this.failures.has(measure.errorType) || this.failures.size < this.maxErrorTypes ? measure.errorType : 'Other';
      this.failures.set(type, (this.failures.get(type) ?? 0) + 1);
    }
  }

  flush(): string[] {
    const at = this.clock();
    const lines: string[] = [];
    const emf = (
      dimensions: string[],
      metrics: Record<string, { unit: string; value: number | number[] }>,
      extra = {},
    ) => {
      const body: Record<string, unknown> = { ...extra };
      for (const [name, m] of Object.entries(metrics)) body[name] = m.value;
      lines.push(
        JSON.stringify({
          _aws: {
            Timestamp: at,
            CloudWatchMetrics: [
              {
                Namespace: this.options.namespace,
                Dimensions: [dimensions],
                Metrics: Object.entries(metrics).map(([Name, m]) => ({ Name, Unit: m.unit })),
              },
            ],
          },
          ...body,
        }),
      );
    };
    const queued = this.queued.values;
    const run = this.run.values;
    const chunks = Math.max(Math.ceil(queued.length / VALUES_PER_LINE), Math.ceil(run.length / VALUES_PER_LINE));
    for (let i = 0; i < Math.max(1, chunks); i++) {
      const metrics: Record<string, { unit: string; value: number | number[] }> = {};
      if (i === 0 && this.retried > 0) metrics[TASK_METRICS.retried] = { unit: 'Count', value: this.retried };
      const q = queued.slice(i * VALUES_PER_LINE, (i + 1) * VALUES_PER_LINE);
      const r = run.slice(i * VALUES_PER_LINE, (i + 1) * VALUES_PER_LINE);
      if (q.length > 0) metrics[TASK_METRICS.queuedTime] = { unit: 'Milliseconds', value: q };
      if (r.length > 0) metrics[TASK_METRICS.runTime] = { unit: 'Milliseconds', value: r };
      if (Object.keys(metrics).length > 0) emf([], metrics);
    }
    for (const [type, count] of this.failures) {
      emf(
        [TASK_METRICS.errorTypeDimension],
        { [TASK_METRICS.failedAttempts]: { unit: 'Count', value: count } },
        {
          [TASK_METRICS.errorTypeDimension]: type,
        },
      );
    }
    this.retried = 0;
    this.queued = new Reservoir(this.maxSamples, this.random);
    this.run = new Reservoir(this.maxSamples, this.random);
    this.failures = new Map();
    return lines;
  }
}
