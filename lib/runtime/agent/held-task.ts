// A task an agent has claimed: waiting for a slot, or running in one.
import type { TaskRecord } from '../../core';
import type { AbortCause } from './attempt-outcome';

export interface HeldTask {
  readonly task: TaskRecord;
  readonly claimedAt: number;
  lastExtendedAt: number;
  /**
   * The receipt of the message the task was claimed from, while that message still guards it (tables whose reaper
   * sees a lease only once extended): acknowledged at the first extension or once the attempt's end is written.
   */
  receipt?: string;
  /** Its slot's controller while the invocation runs (slots reuse one until it is aborted): aborting interrupts it. */
  controller?: AbortController;
  abortCause?: AbortCause;
  running: boolean;
}
