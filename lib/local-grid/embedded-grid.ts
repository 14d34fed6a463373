// A whole grid in one process on embedded backends: SQLite table and queue, file store, local runtimes, reaper.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { ExpiryTimer, openLocalBackends, SessionExpiry, WriteLock, type LocalBackends } from '../backends/local';
import { GridClient } from '../client';
import type { GridConfig } from '../core';
import { silentLogger } from '../logging';
import { prepareTaskRoot } from '../packaging';
import { Agent, newSlotCounters, PresenceHeartbeat } from '../runtime/agent';
import { ReaperTimer } from '../runtime/reaper';
import { claimGridFolder, gridIdentityOf } from './grid-identity';
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
  const { config } = options;
  fs.mkdirSync(options.dataDir, { recursive: true });
  // The agent threads write the same database: they and this thread hand its write lock over without sleeping.
  const writeLock = WriteLock.memory();
  const backends = openLocalBackends(options.dataDir, { logger, writeLock });
  // Commits wake a waiting handle (backends.changes); its poll is only the fallback where the folder can't be watched.
  const client = new GridClient({
    config,
    ...backends,
    logger,
    pollIntervalMs: backends.changes.watching ? 1_000 : 20,
  });
  let agent: EmbeddedAgent | undefined;
  let reaper: ReaperTimer | undefined;
  let expiry: ExpiryTimer | undefined;
  let heartbeat: PresenceHeartbeat | undefined;
  let taskRoot: string | undefined;
  let workDir: string | undefined;
  try {
    if (options.worker) {
      // Each agent unpacks into its own folder: a second agent on the same grid must not replace files under the first.
      workDir = path.join(options.dataDir, 'workers', `${process.pid}-${randomUUID().slice(0, 8)}`);
      const prepared = await prepareTaskRoot(options.worker, workDir, {
        pythonExecutable: config.pythonExecutable,
        logger,
      });
      taskRoot = prepared.taskRoot;
      if (options.claimFolder) {
        const identity = await gridIdentityOf(options.worker, prepared.zipPath, config);
        const differences = await claimGridFolder(options.dataDir, identity, backends.agents);
        if (differences.length > 0) options.onFolderTakeover?.(differences);
      }
      const root = taskRoot;
      const threads = options.agentThreads ?? (agentThreadEntry() ? 1 : 0);
      if (threads > 0) {
        agent = await ThreadedAgent.start({
          dataDir: options.dataDir,
          config,
          taskRoot: root,
          threads,
          writeLock,
          logger,
          onWorkerOutput: options.onWorkerOutput,
        });
      } else {
        const slotCounters = newSlotCounters();
        const mainAgent = await startAgent(
          new Agent(
            localAgentOptions({
              config,
              backends,
              taskRoot: root,
              logger,
              slotCounters,
              onOutput: options.onWorkerOutput,
            }),
          ),
        );
        agent = {
          owner: mainAgent.owner,
          stats: mainAgent.stats,
          slotCounters,
          stop: (graceMs) => mainAgent.stop(graceMs),
        };
      }
      const running = agent;
      // The grid folder's agent registry: clients tell "no agent alive" from "tasks waiting their turn".
      heartbeat = new PresenceHeartbeat({
        registry: backends.agents,
        presence: {
          // The lease owner of its (first) agent: what task histories show.
          agentId: running.owner,
          host: os.hostname(),
          pid: process.pid,
          slots: config.slots,
          handler: config.handler,
          runtime: config.runtime.name,
          startedAt: Date.now(),
        },
        activity: () => {
          const slots = running.slotCounters;
          return { busySlots: slots.busy, runtimeRestarts: slots.restarts, tasks: running.stats };
        },
        logger,
      });
      await heartbeat.start();
      reaper = new ReaperTimer({
        table: backends.table,
        queue: backends.queue,
        logger,
        intervalMs: config.reaperIntervalMs,
      });
      reaper.start();
      // Finished sessions past task_retention_sec go in small batches; freed pages go back to the file system.
      expiry = new ExpiryTimer(new SessionExpiry(backends.database, backends.store, config.retentionMs), {
        intervalMs: options.expiry?.intervalMs ?? Math.max(config.reaperIntervalMs, 5_000),
        now: options.expiry?.now,
        logger,
      });
      expiry.start();
    }
  } catch (err) {
    await heartbeat?.stop();
    await agent?.stop(0);
    await backends.close();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    backends,
    client,
    agent,
    taskRoot,
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
