// How far ahead an agent works: tasks claimed beyond its free slots (fixed, or about a second of work per slot), from
// a moving average of recent run times that also gates sending tasks ahead into busy runtimes.

/** Weight of the latest run in the moving average. */
const RUN_MS_WEIGHT = 0.1;

/** A fixed number of tasks, or `auto` (see `PrefetchPolicy`). */
export type PrefetchSetting = number | 'auto';

export interface PrefetchPolicyOptions {
  readonly setting: PrefetchSetting;
  readonly slots: number;
  /** The most `auto` ever claims ahead (a full receive batch is enough to keep requests per task low). */
  readonly max: number;
  /** How much work per slot `auto` holds ahead. @default 1000 ms */
  readonly windowMs?: number;
}

/**
 * `auto` claims about `windowMs` of work ahead per slot, from a moving average of recent run times, between 1 and
 * `max` tasks. Short tasks get full receive batches (each receive and each acknowledgement is a billed request, so
 * batches of 1-2 would double the requests per task); long ones are not held back from idle agents (a claimed task
 * waits for this agent's slot, however many agents are free).
 */
export class PrefetchPolicy {
  private averageMs: number | undefined;
  private readonly windowMs: number;

  constructor(private readonly options: PrefetchPolicyOptions) {
    this.windowMs = options.windowMs ?? 1_000;
  }

  /** Records how long an attempt ran (from when it started in its runtime). */
  observe(runMs: number): void {
    const ms = Math.max(0, runMs);
    this.averageMs = this.averageMs === undefined ? ms : this.averageMs + RUN_MS_WEIGHT * (ms - this.averageMs);
  }

  /** Moving average of recent run times (about the last 10 weigh in); undefined until a task has run. */
  get averageRunMs(): number | undefined {
    return this.averageMs;
  }

  /** Tasks to hold beyond the slots right now. */
  get current(): number {
    const { setting, slots, max } = this.options;
    if (setting !== 'auto') return setting;
    // Until a task has run, as many as there are slots.
    if (this.averageMs === undefined) return Math.min(max, slots);
    const ahead = Math.ceil((slots * this.windowMs) / Math.max(1, this.averageMs));
    return Math.max(1, Math.min(max, ahead));
  }
}
