// A task an agent has claimed: waiting for a slot, or running in one.
import type { TaskRecord } from '../../core';
import type { AbortCause } from './attempt-outcome';

export interface HeldTask {
  readonly task: TaskRecord;
  readonly claimedAt: number;
  lastExtendedAt: number;
  /** Its slot's controller while the invocation runs (slots reuse one until it is aborted): aborting interrupts it. */
  controller?: AbortController;
  abortCause?: AbortCause;
  running: boolean;
}
