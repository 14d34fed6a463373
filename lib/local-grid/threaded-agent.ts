// Main-thread side of an embedded grid's agents run in worker threads: starts them, mirrors their stats, drains them.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import pino, { type Logger } from 'pino';
import { HtcGridError, WorkerInitError, type GridConfig } from '../core';
import { SLOT_COUNTER_KEYS, type AgentStats, type SlotCounters } from '../runtime/agent';

/** What an embedded grid exposes of its agent, whether it runs on the main thread or in worker threads. */
export interface EmbeddedAgent {
  /** Lease owner of the (first) agent. */
  readonly owner: string;
  /** Counters of the agent(s): live when on the main thread, a few microseconds behind when in threads. */
  readonly stats: Readonly<AgentStats>;
  /** Busy slots and runtime restarts of the agent(s), as `stats`. */
  readonly slotCounters: Readonly<SlotCounters>;
  /** Agents waiting for disk space: their leases may have lapsed meanwhile, so the grid's reaper waits too. */
  readonly waitingForDisk: number;
  /** Graceful drain within `graceMs`; a second call ends the grace. */
  stop(graceMs?: number): Promise<void>;
}

/** Start data of one agent thread (structured-cloned into it). */
export interface AgentThreadData {
  readonly dataDir: string;
  readonly config: GridConfig;
  readonly taskRoot: string;
  readonly owner: string;
  readonly slots: number;
  /** Index of this thread's first slot among the grid's slots. */
  readonly slotOffset: number;
  /** Shared counters, in the order of `STAT_KEYS`. */
  readonly statsBuffer: SharedArrayBuffer;
  /** Shared slot counters, in the order of `SLOT_COUNTER_KEYS`. */
  readonly slotsBuffer: SharedArrayBuffer;
  /** The process's `WriteLock` on the grid database, if it has one. */
  readonly writeLock?: SharedArrayBuffer;
  /** One shared Int32: how many of the process's agent threads wait for disk space (see `waitingForDisk`). */
  readonly diskFullBuffer: SharedArrayBuffer;
  /** Level of the thread's logger; its lines are written to the main logger's destination. */
  readonly logLevel: string;
  readonly logBindings: Record<string, unknown>;
  readonly forwardOutput: boolean;
}

export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly errorType?: string;
  readonly hint?: string;
  readonly stack?: string;
}

/** Messages from an agent thread to the main thread. */
export type AgentThreadEvent =
  | { readonly type: 'started' }
  | { readonly type: 'start-failed'; readonly error: SerializedError }
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'output'; readonly taskId?: string; readonly stream: 'stdout' | 'stderr'; readonly chunk: string }
  /** The thread's agent found the disk full (`full`) or space back; the shared counter is already updated. */
  | { readonly type: 'disk-space'; readonly full: boolean }
  | { readonly type: 'stopped' };

/** Messages from the main thread to an agent thread. */
export interface AgentThreadCommand {
  readonly type: 'stop';
  readonly graceMs: number;
}

const STAT_KEYS = ['claimed', 'succeeded', 'failed', 'retried', 'released', 'dropped'] as const;

/** An `AgentStats` whose counters live in `buffer`, so another thread reads them as they change. */
export function sharedStats(buffer: SharedArrayBuffer): AgentStats {
  return sharedCounters<AgentStats>(buffer, STAT_KEYS);
}

/** `SlotCounters` living in `buffer`, as `sharedStats`. */
export function sharedSlotCounters(buffer: SharedArrayBuffer): SlotCounters {
  return sharedCounters<SlotCounters>(buffer, SLOT_COUNTER_KEYS);
}

function countersBuffer(keys: readonly string[]): SharedArrayBuffer {
  return new SharedArrayBuffer(keys.length * Float64Array.BYTES_PER_ELEMENT);
}

function sharedCounters<T extends object>(buffer: SharedArrayBuffer, keys: readonly (keyof T & string)[]): T {
  const cells = new Float64Array(buffer);
  const stats = {} as T;
  keys.forEach((key, i) =>
    Object.defineProperty(stats, key, {
      enumerable: true,
      get: () => cells[i]!,
      set: (value: number) => {
        cells[i] = value;
      },
    }),
  );
  return stats;
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const hint = err instanceof HtcGridError ? err.hint : undefined;
  // HtcGridError appends the hint to its message; the main thread appends it again when it re-creates the error.
  const suffix = hint ? `\n  fix: ${hint}` : '';
  const message = suffix && err.message.endsWith(suffix) ? err.message.slice(0, -suffix.length) : err.message;
  const errorType = err instanceof WorkerInitError ? err.errorType : undefined;
  return { name: err.name, message, errorType, hint, stack: err.stack };
}

/** Re-creates an error of an agent thread: `WorkerInitError` keeps its class, type, message and hint. */
export function deserializeError(error: SerializedError): Error {
  const recreated =
    error.name === 'WorkerInitError'
      ? new WorkerInitError(error.message, error.errorType, { hint: error.hint })
      : error.name === 'HtcGridError' || error.hint
        ? new HtcGridError(error.message, { hint: error.hint })
        : new Error(error.message);
  if (recreated.name !== error.name) recreated.name = error.name;
  if (error.stack) recreated.stack = error.stack;
  return recreated;
}

export interface ThreadedAgentOptions {
  readonly dataDir: string;
  readonly config: GridConfig;
  readonly taskRoot: string;
  readonly threads: number;
  /** Memory of the `WriteLock` the process's other connections to the grid database take. */
  readonly writeLock?: SharedArrayBuffer;
  readonly logger: Logger;
  readonly onWorkerOutput?: (taskId: string | undefined, stream: 'stdout' | 'stderr', chunk: string) => void;
  /** Called when an agent thread finds the disk full (`true`) or space back (`false`), after `waitingForDisk` changed. */
  readonly onDiskFull?: (full: boolean) => void;
}

interface AgentThread {
  readonly worker: Worker;
  readonly owner: string;
  readonly stats: AgentStats;
  readonly slotCounters: SlotCounters;
  readonly exited: Promise<void>;
}

/** Path of the compiled thread entry next to this file, or undefined when running from TypeScript sources. */
export function agentThreadEntry(): string | undefined {
  if (!__filename.endsWith('.js')) return undefined;
  const entry = path.join(__dirname, 'agent-thread.js');
  return fs.existsSync(entry) ? entry : undefined;
}

/** The agents of an embedded grid, each in its own worker thread with its own database connection and runtimes. */
export class ThreadedAgent implements EmbeddedAgent {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly threads: readonly AgentThread[],
    private readonly logger: Logger,
    private readonly diskFull: Int32Array,
  ) {}

  /**
   * Starts `threads` agents sharing `config.slots` between them; rejects (with `WorkerInitError` re-created from the
   * thread's) when any cannot start, after stopping the others.
   */
  static async start(options: ThreadedAgentOptions): Promise<ThreadedAgent> {
    const entry = agentThreadEntry();
    if (!entry) throw new Error('agent threads need the compiled build (run from dist, or pass agentThreads: 0)');
    const { config, logger } = options;
    const count = Math.max(1, Math.min(options.threads, config.slots));
    const stream = destinationOf(logger);
    const threads: AgentThread[] = [];
    const starts: Array<Promise<void>> = [];
    let slotOffset = 0;
    const diskFullBuffer = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
    for (let i = 0; i < count; i++) {
      const slots = Math.floor(config.slots / count) + (i < config.slots % count ? 1 : 0);
      const statsBuffer = countersBuffer(STAT_KEYS);
      const slotsBuffer = countersBuffer(SLOT_COUNTER_KEYS);
      const data: AgentThreadData = {
        dataDir: options.dataDir,
        config,
        taskRoot: options.taskRoot,
        owner: `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
        slots,
        slotOffset,
        statsBuffer,
        slotsBuffer,
        writeLock: options.writeLock,
        diskFullBuffer,
        logLevel: logger.level,
        // Same process: its lines carry the pid as the main thread's do.
        logBindings: { pid: process.pid, ...logger.bindings() },
        forwardOutput: options.onWorkerOutput !== undefined,
      };
      slotOffset += slots;
      const worker = new Worker(entry, { workerData: data });
      let settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
      starts.push(new Promise<void>((resolve, reject) => (settle = { resolve, reject })));
      worker.on('message', (event: AgentThreadEvent) => onThreadEvent(event, options, stream, settle));
      worker.on('error', (err) => {
        logger.error({ err, owner: data.owner }, 'agent thread failed');
        settle?.reject(err);
      });
      const exited = new Promise<void>((resolve) =>
        worker.once('exit', (code) => {
          settle?.reject(new Error(`agent thread exited with code ${code} before it started`));
          resolve();
        }),
      );
      threads.push({
        worker,
        owner: data.owner,
        stats: sharedStats(statsBuffer),
        slotCounters: sharedSlotCounters(slotsBuffer),
        exited,
      });
    }
    const agent = new ThreadedAgent(threads, logger, new Int32Array(diskFullBuffer));
    const started = await Promise.allSettled(starts);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await agent.stop(0);
      throw failed.reason;
    }
    return agent;
  }

  get owner(): string {
    return this.threads[0]!.owner;
  }

  get stats(): Readonly<AgentStats> {
    const sum: AgentStats = { claimed: 0, succeeded: 0, failed: 0, retried: 0, released: 0, dropped: 0 };
    for (const thread of this.threads) for (const key of STAT_KEYS) sum[key] += thread.stats[key];
    return sum;
  }

  get waitingForDisk(): number {
    return Atomics.load(this.diskFull, 0);
  }

  get slotCounters(): Readonly<SlotCounters> {
    const sum: SlotCounters = { busy: 0, restarts: 0 };
    for (const thread of this.threads) for (const key of SLOT_COUNTER_KEYS) sum[key] += thread.slotCounters[key];
    return sum;
  }

  /** Drains every thread's agent within `graceMs` and waits for the threads to end. A second call ends the grace. */
  stop(graceMs = 30_000): Promise<void> {
    if (this.stopping) {
      this.post({ type: 'stop', graceMs: 0 });
      return this.stopping;
    }
    this.post({ type: 'stop', graceMs });
    this.stopping = Promise.all(this.threads.map((thread) => thread.exited)).then(() =>
      this.logger.debug({ stats: this.stats }, 'agent threads stopped'),
    );
    return this.stopping;
  }

  private post(command: AgentThreadCommand): void {
    for (const thread of this.threads) thread.worker.postMessage(command);
  }
}

/** What the main thread does with an event of an agent thread; `start` settles the thread's start. */
function onThreadEvent(
  event: AgentThreadEvent,
  options: ThreadedAgentOptions,
  stream: { write(line: string): unknown } | undefined,
  start: { resolve: () => void; reject: (err: Error) => void } | undefined,
): void {
  switch (event.type) {
    case 'log':
      stream?.write(event.line);
      break;
    case 'output':
      options.onWorkerOutput?.(event.taskId, event.stream, event.chunk);
      break;
    case 'disk-space':
      options.onDiskFull?.(event.full);
      break;
    case 'started':
      start?.resolve();
      break;
    case 'start-failed':
      start?.reject(deserializeError(event.error));
      break;
    case 'stopped':
      break;
  }
}

/** The destination stream of a pino logger, where agent threads' log lines go. */
function destinationOf(logger: Logger): { write(line: string): unknown } | undefined {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (typeof stream === 'object' && stream !== null && 'write' in stream && typeof stream.write === 'function')
    return stream as { write(line: string): unknown };
  return undefined;
}
