// Counts an agent's busy slots and runtime restarts by wrapping each slot's invoker, so the agent loop needs no change
// and its heartbeat can tell clients which slots are working.
import type { InvokeResult, Invocation, WorkerInvoker } from '../../ports';

/** Counters one agent's slots share (a plain object, or one backed by shared memory read from another thread). */
export interface SlotCounters {
  /** Slots with an invocation running now. */
  busy: number;
  /**
   * Runtimes restarted: an invocation that timed out, crashed its runtime, or was interrupted while running (a
   * cancel, a lost lease, a drain) ends with its runtime killed, and the invoker starts a new one.
   */
  restarts: number;
}

export const SLOT_COUNTER_KEYS = ['busy', 'restarts'] as const;

export function newSlotCounters(): SlotCounters {
  return { busy: 0, restarts: 0 };
}

/**
 * `invoker`, counting into `counters`: the slot is busy while at least one invocation it accepted is in flight (an
 * invoker that takes one ahead, the local Python runtime, still runs one at a time), and an invocation that ran and
 * ended by timeout, runtime crash or interruption counts a restart. One queued behind and cancelled before it started
 * restarts nothing.
 */
export function countSlotUsage(invoker: WorkerInvoker, counters: SlotCounters): WorkerInvoker {
  let inFlight = 0;
  return {
    start: () => invoker.start(),
    close: () => invoker.close(),
    // A promise chain, not an async function: a suspended async function keeps a frame, once per task here.
    invoke(invocation: Invocation, signal?: AbortSignal, onStarted?: () => void): Promise<InvokeResult> {
      // Alone in the slot, it starts at once; behind another, when the invoker says so.
      let started = inFlight === 0;
      if (inFlight++ === 0) counters.busy++;
      let invoked: Promise<InvokeResult> | undefined;
      try {
        invoked = invoker.invoke(invocation, signal, () => {
          started = true;
          onStarted?.();
        });
      } finally {
        // An invoker that throws rather than rejects: the slot is not busy with it (the caller sees the throw).
        if (invoked === undefined && --inFlight === 0) counters.busy--;
      }
      return invoked.then(
        (result) => {
          if (--inFlight === 0) counters.busy--;
          if (!result.ok && started && restartsRuntime(result.reason, signal)) counters.restarts++;
          return result;
        },
        (err: unknown) => {
          if (--inFlight === 0) counters.busy--;
          throw err;
        },
      );
    },
  };
}

function restartsRuntime(reason: string, signal: AbortSignal | undefined): boolean {
  return reason === 'timeout' || reason === 'runtime-crash' || (reason === 'cancelled' && signal?.aborted === true);
}
