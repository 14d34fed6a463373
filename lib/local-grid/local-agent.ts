// The one set of settings an embedded grid's agent runs with, on the main thread or in an agent thread.
import type { LocalBackends } from '../backends/local';
import type { GridConfig } from '../core';
import type { Logger } from '../logging';
import { countSlotUsage, type AgentOptions, type AgentStats, type SlotCounters } from '../runtime/agent';
import { createGridSlotInvoker, defaultMaxQueued, type OutputListener } from '../runtime/local';

/**
 * Tasks a local agent claims ahead of its slots, at least. The agent receives only full batches (`receive_batch_size`,
 * 10 by default) while tasks wait, so with fewer than a few batches plus what runs, the ready list ran dry before each
 * batch and the runtimes' queues with it; 128 refills it with a couple of dozen still waiting (measured in
 * bench/README.md: +8% tasks/s).
 */
export const LOCAL_PREFETCH = 128;

/**
 * How long a local agent long-polls the SQLite queue. Sends wake it (in-process directly, from other processes through
 * the database's change file), so this only bounds how often an idle agent looks: once a second.
 */
const LOCAL_RECEIVE_WAIT_MS = 1_000;

export interface LocalAgentInput {
  readonly config: GridConfig;
  readonly backends: Pick<LocalBackends, 'table' | 'queue' | 'store' | 'intake'>;
  /** The unpacked worker. */
  readonly taskRoot: string;
  readonly logger: Logger;
  /** This agent's slots. @default config.slots */
  readonly slots?: number;
  /** Index of this agent's first slot among the grid's slots (agent threads share them). @default 0 */
  readonly slotOffset?: number;
  /** @default - a new owner id */
  readonly owner?: string;
  /** @default - private counters */
  readonly stats?: AgentStats;
  /** Where its busy slots and runtime restarts are counted. @default - not counted */
  readonly slotCounters?: SlotCounters;
  readonly onOutput?: OutputListener;
  /** Told when the agent finds the disk full and when space is back (see `AgentOptions.onDiskFull`). */
  readonly onDiskFull?: (full: boolean) => void;
}

/** The `Agent` options of an embedded grid's agent (one per thread when the grid runs agent threads). */
export function localAgentOptions(input: LocalAgentInput): AgentOptions {
  const { config, backends, taskRoot, logger } = input;
  const slots = input.slots ?? config.slots;
  const slotOffset = input.slotOffset ?? 0;
  return {
    config,
    table: backends.table,
    queue: backends.queue,
    store: backends.store,
    intake: backends.intake,
    logger,
    slots,
    ...(input.owner === undefined ? {} : { owner: input.owner }),
    ...(input.stats === undefined ? {} : { stats: input.stats }),
    ...(input.onDiskFull === undefined ? {} : { onDiskFull: input.onDiskFull }),
    receiveWaitMs: LOCAL_RECEIVE_WAIT_MS,
    // One agent owns these slots, so it can claim well ahead of them: no slot waits for the queue.
    prefetch: Math.max(LOCAL_PREFETCH, slots * 32),
    queuedPerSlot: defaultMaxQueued(config.runtime),
    stalledAfterMs: config.stalledAfterMs,
    createInvoker: (slot) => {
      const invoker = createGridSlotInvoker(config, {
        taskRoot,
        logger,
        slotIndex: slotOffset + slot,
        onOutput: input.onOutput,
      });
      return input.slotCounters ? countSlotUsage(invoker, input.slotCounters) : invoker;
    },
  };
}
