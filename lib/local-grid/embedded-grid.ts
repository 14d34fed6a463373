// A whole grid in one process on embedded backends: SQLite table and queue, file store, local runtimes, reaper.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import {
  ExpiryTimer,
  openLocalBackends,
  SessionExpiry,
  startWalCheckpoints,
  WriteLock,
  type LocalBackends,
  type WalCheckpoints,
} from '../backends/local';
import { GridClient } from '../client';
import type { GridConfig } from '../core';
import { silentLogger } from '../logging';
import { prepareTaskRoot } from '../packaging';
import { Agent, DiskWaitReport, newSlotCounters, PresenceHeartbeat } from '../runtime/agent';
import { ReaperTimer } from '../runtime/reaper';
import { claimGridFolder, gridIdentityOf } from './grid-identity';
import { newWorkerFolder, removeStaleWorkerFolders } from './worker-folders';
import { localAgentOptions } from './local-agent';
import { agentThreadEntry, ThreadedAgent, type EmbeddedAgent } from './threaded-agent';

export type { EmbeddedAgent } from './threaded-agent';

export interface EmbeddedGridOptions {
  /** Folder of the grid's database and payloads. */
  readonly dataDir: string;
  readonly config: GridConfig;
  /** Worker folder or Lambda zip. Omit for a client-only grid. */
  readonly worker?: string;
  readonly logger?: Logger;
  /** Receives what workers print, per task. */
  readonly onWorkerOutput?: (taskId: string | undefined, stream: 'stdout' | 'stderr', chunk: string) => void;
  /**
   * Worker threads the agent runs in, each with its own database connection and a share of the slots, so the
   * client's work on the main thread and the agent's use two cores. 0 runs the agent on the main thread.
   * @default 1 when running the compiled build, 0 when running TypeScript sources (ts-jest, ts-node)
   */
  readonly agentThreads?: number;
  /**
   * Makes the folder this grid's, before its agent starts (see `claimGridFolder`): refuses while agents of another
   * worker or handler run there, and says when the folder passes from another grid to this one.
   * @default false
   */
  readonly claimFolder?: boolean;
  /** Called with each difference when the folder passes from another (stopped) grid to this one. */
  readonly onFolderTakeover?: (differences: readonly string[]) => void;
  /**
   * How the agent's grid expires finished sessions (`task_retention_sec`): the clock their age is measured on and how
   * often it looks. Tests inject a clock instead of waiting days.
   * @default { now: Date.now, intervalMs: max(reaper_interval_sec, 5 s) }
   */
  readonly expiry?: { readonly now?: () => number; readonly intervalMs?: number };
}

export interface EmbeddedGrid {
  readonly backends: LocalBackends;
  readonly client: GridClient;
  /** Present when a worker was given: the agent itself, or a proxy of the agent threads. */
  readonly agent?: EmbeddedAgent;
  readonly taskRoot?: string;
  /** Drains the agent (within `graceMs`), stops the reaper and closes the backends. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Opens the backends in `dataDir` and, when a worker is given, unpacks it from its zip (bundling a folder first,
 * exactly as in AWS) and starts an agent with `config.slots` runtimes plus the reaper. Rejects with
 * `WorkerInitError` when the handler cannot be loaded.
 */
export async function startEmbeddedGrid(options: EmbeddedGridOptions): Promise<EmbeddedGrid> {
  const logger = options.logger ?? silentLogger();
  fs.mkdirSync(options.dataDir, { recursive: true });
  // The agent threads write the same database: they and this thread hand its write lock over without sleeping.
  const writeLock = WriteLock.memory();
  const backends = openLocalBackends(options.dataDir, { logger, writeLock });
  // Commits wake a waiting handle (backends.changes); its poll is only the fallback where the folder can't be watched.
  const client = new GridClient({
    config: options.config,
    ...backends,
    logger,
    pollIntervalMs: backends.changes.watching ? 1_000 : 20,
  });
  const parts: WorkerSide = {};
  try {
    if (options.worker) await startWorkerSide(options, options.worker, { backends, writeLock, logger }, parts);
  } catch (err) {
    await parts.heartbeat?.stop();
    await parts.agent?.stop(0);
    await parts.checkpoints?.stop();
    await backends.close();
    if (parts.workDir) fs.rmSync(parts.workDir, { recursive: true, force: true });
    throw err;
  }
  return embeddedGrid(backends, client, parts);
}

/** What a grid with a worker runs beside its client; filled in as each part starts, so a failure stops what did. */
interface WorkerSide {
  workDir?: string;
  taskRoot?: string;
  agent?: EmbeddedAgent;
  heartbeat?: PresenceHeartbeat;
  reaper?: ReaperTimer;
  expiry?: ExpiryTimer;
  checkpoints?: WalCheckpoints;
}

interface GridContext {
  readonly backends: LocalBackends;
  /** The shared memory of the database's write lock (`WriteLock.memory()`), handed to agent threads. */
  readonly writeLock: SharedArrayBuffer;
  readonly logger: Logger;
}

/** Unpacks the worker, claims the folder if asked, then starts the agent, its heartbeat, the reaper and expiry. */
async function startWorkerSide(
  options: EmbeddedGridOptions,
  worker: string,
  grid: GridContext,
  parts: WorkerSide,
): Promise<void> {
  const { config } = options;
  const { backends, logger } = grid;
  // Each agent unpacks into its own folder: a second agent on the same grid must not replace files under the first.
  // Those of agents that are gone (killed, or stopped while starting) are cleared first.
  const stale = removeStaleWorkerFolders(options.dataDir);
  if (stale.length > 0) logger.info({ folders: stale }, 'removed the worker folders of agents that are gone');
  parts.workDir = newWorkerFolder(options.dataDir);
  const prepared = await prepareTaskRoot(worker, parts.workDir, { pythonExecutable: config.pythonExecutable, logger });
  parts.taskRoot = prepared.taskRoot;
  if (options.claimFolder) {
    const identity = await gridIdentityOf(worker, prepared.zipPath, config);
    const differences = await claimGridFolder(options.dataDir, identity, backends.agents);
    if (differences.length > 0) options.onFolderTakeover?.(differences);
  }
  // The write-ahead log is checkpointed from a thread of its own, not by the commits of the agent and the client. It
  // only speeds them up: without it they checkpoint the log themselves (WAL_AUTOCHECKPOINT_PAGES).
  parts.checkpoints = await startWalCheckpoints(backends.dbPath, { logger, writeLock: grid.writeLock }).catch(
    (err: unknown) => {
      logger.warn({ err }, "the checkpoint thread did not start; the grid's commits checkpoint the log themselves");
      return undefined;
    },
  );
  // Clients are told at once when the agent starts or stops waiting for disk space (when the hold after space came back
  // ends), not at the next heartbeat. (The heartbeat starts after the agent: a change before then is in its first beat.)
  const diskWait = new DiskWaitReport(() => (parts.agent?.waitingForDisk ?? 0) > 0, {
    onHoldEnd: () => void parts.heartbeat?.refresh(),
  });
  parts.agent = await startAgents(options, prepared.taskRoot, grid, () => {
    diskWait.changed();
    void parts.heartbeat?.refresh();
  });
  const agent = parts.agent;
  parts.heartbeat = presenceHeartbeat(config, backends, agent, diskWait, logger);
  await parts.heartbeat.start();
  parts.reaper = new ReaperTimer({
    table: backends.table,
    queue: backends.queue,
    logger,
    intervalMs: config.reaperIntervalMs,
    // While the agent waits for disk space its leases may lapse; it extends them before it stops waiting.
    paused: () => agent.waitingForDisk > 0,
  });
  parts.reaper.start();
  // Finished sessions past task_retention_sec go in small batches; freed pages go back to the file system.
  parts.expiry = new ExpiryTimer(new SessionExpiry(backends.database, backends.store, config.retentionMs), {
    intervalMs: options.expiry?.intervalMs ?? Math.max(config.reaperIntervalMs, 5_000),
    now: options.expiry?.now,
    logger,
  });
  parts.expiry.start();
}

/** The agent: in worker threads (each with its own connection and a share of the slots), or on this thread. */
async function startAgents(
  options: EmbeddedGridOptions,
  taskRoot: string,
  grid: GridContext,
  onDiskFull: (full: boolean) => void,
): Promise<EmbeddedAgent> {
  const { config } = options;
  const threads = options.agentThreads ?? (agentThreadEntry() ? 1 : 0);
  if (threads > 0) {
    return ThreadedAgent.start({
      dataDir: options.dataDir,
      config,
      taskRoot,
      threads,
      writeLock: grid.writeLock,
      logger: grid.logger,
      onWorkerOutput: options.onWorkerOutput,
      onDiskFull,
    });
  }
  const slotCounters = newSlotCounters();
  let waitingForDisk = 0;
  const agentOptions = localAgentOptions({
    onDiskFull: (full) => {
      waitingForDisk += full ? 1 : -1;
      onDiskFull(full);
    },
    config,
    backends: grid.backends,
    taskRoot,
    logger: grid.logger,
    slotCounters,
    onOutput: options.onWorkerOutput,
  });
  const mainAgent = await startAgent(new Agent(agentOptions));
  return {
    owner: mainAgent.owner,
    stats: mainAgent.stats,
    slotCounters,
    get waitingForDisk() {
      return waitingForDisk;
    },
    stop: (graceMs) => mainAgent.stop(graceMs),
  };
}

/** The grid folder's agent registry: clients tell "no agent alive" from "tasks waiting their turn". */
function presenceHeartbeat(
  config: GridConfig,
  backends: LocalBackends,
  agent: EmbeddedAgent,
  diskWait: DiskWaitReport,
  logger: Logger,
): PresenceHeartbeat {
  return new PresenceHeartbeat({
    registry: backends.agents,
    presence: {
      // The lease owner of its (first) agent: what task histories show.
      agentId: agent.owner,
      host: os.hostname(),
      pid: process.pid,
      slots: config.slots,
      handler: config.handler,
      runtime: config.runtime.name,
      startedAt: Date.now(),
    },
    activity: () => {
      const slots = agent.slotCounters;
      return {
        busySlots: slots.busy,
        runtimeRestarts: slots.restarts,
        tasks: agent.stats,
        waitingForDisk: diskWait.waiting,
      };
    },
    logger,
  });
}

/** The grid handed to the caller: `close` drains the agent, then stops the rest in order. Idempotent. */
function embeddedGrid(backends: LocalBackends, client: GridClient, parts: WorkerSide): EmbeddedGrid {
  const { agent, heartbeat, reaper, expiry, checkpoints, workDir } = parts;
  let closing: Promise<void> | undefined;
  return {
    backends,
    client,
    agent,
    taskRoot: parts.taskRoot,
    close(graceMs = 30_000) {
      if (closing) {
        void agent?.stop(0);
        return closing;
      }
      closing = (async () => {
        await heartbeat?.drain();
        await agent?.stop(graceMs);
        await heartbeat?.stop();
        await reaper?.stop();
        await expiry?.stop();
        await checkpoints?.stop();
        await backends.close();
        if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

async function startAgent(agent: Agent): Promise<Agent> {
  await agent.start();
  return agent;
}
