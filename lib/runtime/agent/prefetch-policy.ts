// How many tasks an agent claims ahead of its free slots: a fixed number, or about a second of work per slot.

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

  /** Records how long an attempt ran. */
  observe(runMs: number): void {
    const ms = Math.max(0, runMs);
    this.averageMs = this.averageMs === undefined ? ms : this.averageMs + 0.2 * (ms - this.averageMs);
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
