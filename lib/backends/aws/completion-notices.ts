// Completion notices in AWS: agents tell a waiting client that tasks of its sessions finished, and how, through an SQS
// queue the client owns, so its results handles have them at once instead of at their next poll.
import { randomUUID } from 'node:crypto';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  QueueDoesNotExist,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { silentLogger } from '../../logging';
import { backoffDelay, sleep, SERVICE_RETRY_BACKOFF, waitForWake } from '../../timing';
import { mapLimit } from './aws-retry';
import {
  MAX_CARRIED_PER_SEND,
  noticeBodies,
  parseNotice,
  type FinishedTask,
  type NoticedTask,
  type NoticeOutcome,
} from './completion-notice-body';
import { NoticeWakeGaps } from './notice-wake-gaps';

/** The longest wait of one ReceiveMessage (SQS's maximum). */
const LONG_POLL_SEC = 20;
/** A live notice queue's handles still look this often (see `CompletionNoticeQueue.fallbackPollMs`). */
const FALLBACK_POLL_MS = 10_000;
/** Receives failing in a row before a client gives its notice queue up and only polls. */
const MAX_RECEIVE_FAILURES = 5;
/**
 * SendMessage calls one send to a session has under way at most: a cancellation of a million tasks names them in
 * about 770 notices, sent a few at a time rather than all at once.
 */
export const NOTICE_SENDS_AT_ONCE = 8;
/** Sessions whose notice queue an agent remembers (a bounded map: the oldest entries go first). */
const REMEMBERED_SESSIONS = 10_000;
/** Sessions whose noticed tasks a client keeps for its readers, and tasks per session (more: the index is read). */
const NOTICED_SESSIONS = 256;
const NOTICED_TASKS_PER_SESSION = MAX_CARRIED_PER_SEND;
/** Bytes of carried outcomes a client keeps for its readers at most; past it, noticed tasks are kept by name only. */
const MAX_CARRIED_BYTES = 16 * 1024 * 1024;
/** Sessions whose last wake a client remembers (older ones count as woken at any version up to the oldest dropped). */
const WOKEN_SESSIONS = 1024;

/**
 * The attributes of a client's notice queue. Notices are never deleted: received ones stay invisible for 12 hours
 * (SQS's longest visibility) and SQS drops every message 60 s after it was sent (its shortest retention), so a notice
 * costs one send and a share of one receive, and no DeleteMessage. SSE-SQS encrypts them at rest.
 */
export const NOTICE_QUEUE_ATTRIBUTES = {
  MessageRetentionPeriod: '60',
  VisibilityTimeout: '43200',
  ReceiveMessageWaitTimeSeconds: String(LONG_POLL_SEC),
  SqsManagedSseEnabled: 'true',
} as const;

/** A finished task without its item. */
function namedOnly(task: FinishedTask): FinishedTask {
  return task.outcome === undefined ? task : { taskId: task.taskId };
}

/** The session id of a task id (`<sessionId>_<index>`, see `taskIdOf`). */
function sessionOfTask(taskId: string): string {
  const cut = taskId.lastIndexOf('_');
  return cut < 0 ? taskId : taskId.slice(0, cut);
}

export interface CompletionNoticeSenderOptions {
  readonly client: SQSClient;
  /** Reads the notice queue URL a session's client asked for (undefined: none, nobody is told). */
  readonly lookup: (sessionId: string) => Promise<string | undefined>;
  /**
   * After a notice to a session, the next one waits at least this long, gathering the tasks that finish meanwhile; a
   * notice that gathered the ends of several completion writes doubles the wait, up to `maxWindowMs`, one for a single
   * write halves it, down to this. A task finishing alone is told at once, and so is each task of a session that runs
   * one at a time (a notebook's); a busy session costs one notice per `maxWindowMs` and agent however many tasks end
   * (fewer looks than the client's polling, which doubles from 50 ms to 2 s), not one per completion write.
   * @default 50
   */
  readonly windowMs?: number;
  /**
   * The longest wait between two notices to a session; a session quiet for longer starts again at `windowMs`. Each
   * notice makes the client read the session's results (a Query per index shard): a long session's results come in
   * steps of this, its first ones within tens of milliseconds.
   * @default 5000
   */
  readonly maxWindowMs?: number;
  /** @default - a silent logger */
  readonly logger?: Logger;
}

interface SessionNotices {
  /** Undefined while the lookup runs; null: the session has no notice queue (or it is gone). */
  url: string | null | undefined;
  lookup?: Promise<void>;
  waiting: FinishedTask[];
  /** More wait than a notice carries outcomes for (see `noticeBodies`): they are named only, their items let go. */
  namesOnly: boolean;
  lastSentAt: number;
  /** The wait after `lastSentAt` before the next notice. */
  windowMs: number;
  /** Calls of `finished` whose tasks wait in `waiting`: more than one means the window gathered (see `sendNow`). */
  writes: number;
  timer?: NodeJS.Timeout;
  /** Its lookup and sends under way: what a `flush` of this session waits for. */
  readonly inFlight: Set<Promise<void>>;
}

/**
 * The agent's side: `finished(taskIds)` after their terminal states are written. One notice per session and window
 * to the queue the session's client named (see `CompletionNoticeQueue`); sessions without one cost nothing. Never
 * throws and never delays the caller: a failed send is logged, and the client finds the results at its next poll.
 */
export class CompletionNoticeSender {
  private readonly sessions = new Map<string, SessionNotices>();
  /** Every session's lookups and sends under way (of sessions no longer remembered too): what `close` waits for. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly windowMs: number;
  private readonly maxWindowMs: number;
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly options: CompletionNoticeSenderOptions) {
    this.windowMs = Math.max(0, options.windowMs ?? 50);
    this.maxWindowMs = Math.max(this.windowMs, options.maxWindowMs ?? 5000);
    this.logger = options.logger ?? silentLogger();
  }

  /** Records what a read of the session's item said about its notice queue (saves the sender a lookup). */
  remember(sessionId: string, url: string | undefined): void {
    const known = this.sessions.get(sessionId);
    if (known) {
      if (known.url === undefined) known.url = url ?? null;
      return;
    }
    this.entry(sessionId).url = url ?? null;
  }

  /**
   * Tasks whose terminal state was just written (never before: a notice may carry the outcome, which must be the one
   * the table holds): their sessions' clients are told (within the window), with the outcomes where they fit. Once
   * more of a session wait than a notice carries outcomes for, they wait by name only: memory stays with the ids.
   */
  finished(tasks: readonly FinishedTask[]): void {
    if (this.closed) return;
    const bySession = new Map<string, FinishedTask[]>();
    for (const task of tasks) {
      const session = sessionOfTask(task.taskId);
      const list = bySession.get(session);
      if (list) list.push(task);
      else bySession.set(session, [task]);
    }
    for (const [sessionId, list] of bySession) {
      const entry = this.entry(sessionId);
      if (entry.url === null) continue;
      if (!entry.namesOnly && entry.waiting.length + list.length > MAX_CARRIED_PER_SEND) {
        entry.namesOnly = true;
        entry.waiting = entry.waiting.map(namedOnly);
      }
      // One by one: a cancellation may end a million tasks, past what a spread into push() takes.
      for (const task of list) entry.waiting.push(entry.namesOnly ? namedOnly(task) : task);
      entry.writes++;
      if (entry.url === undefined) this.look(sessionId, entry);
      else this.schedule(sessionId, entry);
    }
  }

  /** Tasks just claimed: their sessions' notice queues are looked up now, while they run, not when they end. */
  claimed(taskIds: readonly string[]): void {
    if (this.closed) return;
    for (const id of taskIds) {
      const sessionId = sessionOfTask(id);
      const entry = this.entry(sessionId);
      if (entry.url === undefined) this.look(sessionId, entry);
    }
  }

  /**
   * Sends what waits for `sessionIds` (every session if omitted) now, without its window, and resolves once those
   * sessions' notices, lookups and sends under way ended (other sessions' are not waited for): for a process that may
   * stop or freeze right after (a CLI command, the API Lambda between requests), where a window's timer might never
   * fire.
   */
  async flush(sessionIds?: readonly string[]): Promise<void> {
    for (;;) {
      const entries: [string, SessionNotices][] =
        sessionIds === undefined
          ? [...this.sessions]
          : sessionIds.flatMap((id) => {
              const entry = this.sessions.get(id);
              return entry ? [[id, entry]] : [];
            });
      for (const [sessionId, entry] of entries) {
        if (entry.timer) clearTimeout(entry.timer);
        entry.timer = undefined;
        if (entry.url && entry.waiting.length > 0) this.sendNow(sessionId, entry);
      }
      // A lookup that ends meanwhile schedules its session's notice: the next turn sends it.
      const work = sessionIds === undefined ? [...this.inFlight] : entries.flatMap(([, entry]) => [...entry.inFlight]);
      if (work.length === 0) return;
      await Promise.all(work);
    }
  }

  /** Sends what waits and resolves once every notice under way was sent (or given up). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private entry(sessionId: string): SessionNotices {
    let entry = this.sessions.get(sessionId);
    if (entry) return entry;
    entry = {
      url: undefined,
      waiting: [],
      namesOnly: false,
      lastSentAt: -Infinity,
      windowMs: this.windowMs,
      writes: 0,
      inFlight: new Set(),
    };
    this.sessions.set(sessionId, entry);
    if (this.sessions.size > REMEMBERED_SESSIONS) {
      for (const [oldest, old] of this.sessions) {
        if (old.timer || old.url === undefined || old.inFlight.size > 0) continue;
        this.sessions.delete(oldest);
        break;
      }
    }
    return entry;
  }

  /** Reads the session's notice queue once; the notices waiting meanwhile go when it is known. */
  private look(sessionId: string, entry: SessionNotices): void {
    entry.lookup ??= this.track(
      entry,
      this.options
        .lookup(sessionId)
        .then((url) => {
          entry.url ??= url ?? null;
        })
        .catch((err: unknown) => {
          this.logger.warn({ err, sessionId }, 'could not read the session notice queue; its client will poll');
          entry.url ??= null;
        })
        .then(() => this.schedule(sessionId, entry)),
    );
  }

  private schedule(sessionId: string, entry: SessionNotices): void {
    if (!entry.url || entry.waiting.length === 0 || entry.timer) return;
    const wait = entry.lastSentAt + entry.windowMs - Date.now();
    if (wait <= 0 || this.closed) {
      this.sendNow(sessionId, entry);
      return;
    }
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.sendNow(sessionId, entry);
    }, wait);
  }

  private sendNow(sessionId: string, entry: SessionNotices): void {
    const url = entry.url;
    if (!url) return;
    const tasks = entry.waiting;
    const gathered = entry.writes > 1;
    entry.waiting = [];
    entry.writes = 0;
    entry.namesOnly = false;
    const now = Date.now();
    // Busy (the window gathered several writes' tasks): the next notice waits twice as long; a notice for one write
    // halves the wait (the window gathered nothing: a session running one task at a time, told at once again after a
    // few); quiet for a while: back to the shortest. Before, every notice within `maxWindowMs` of the last doubled
    // it, so such a session's results came 0, 0, 0, 100, 300 … 4,900 ms after they ended.
    entry.windowMs =
      now - entry.lastSentAt > this.maxWindowMs
        ? this.windowMs
        : gathered
          ? Math.min(this.maxWindowMs, entry.windowMs * 2)
          : Math.max(this.windowMs, entry.windowMs / 2);
    entry.lastSentAt = now;
    const sending = mapLimit(noticeBodies(sessionId, tasks), NOTICE_SENDS_AT_ONCE, async (body) => {
      if (!entry.url) return; // The client closed meanwhile.
      try {
        await this.options.client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
      } catch (err) {
        if (err instanceof QueueDoesNotExist) {
          entry.url = null; // The client closed: nobody waits any more.
          return;
        }
        this.logger.warn({ err, sessionId }, 'could not send a completion notice; its client will poll');
      }
    });
    void this.track(
      entry,
      sending.then(() => undefined),
    );
  }

  /** Keeps `work` (which never rejects) in the session's and the sender's work under way until it ends. */
  private track(entry: SessionNotices, work: Promise<void>): Promise<void> {
    this.inFlight.add(work);
    entry.inFlight.add(work);
    void work.finally(() => {
      this.inFlight.delete(work);
      entry.inFlight.delete(work);
    });
    return work;
  }
}

export interface CompletionNoticeQueueOptions {
  readonly client: SQSClient;
  /** Name prefix the stack grants clients (`NoticeQueuePrefix` output); the queue is `<prefix><random>`. */
  readonly namePrefix: string;
  /**
   * Bytes of the outcomes notices carried that the client keeps for its readers at most (each outcome counted as its
   * share of its notice's UTF-8 bytes); past it, noticed tasks are kept by name only and read by key.
   * @default 16 MiB
   */
  readonly maxCarriedBytes?: number;
  /** @default - a silent logger */
  readonly logger?: Logger;
}

/**
 * The client's side, a change feed for its results handles: its own SQS queue (created at the first session, deleted
 * by `close`) that agents send notices to, long-polled while a handle waits. A notice raises `version` and wakes the
 * waiters of its session (and any waiting for every change), who take the tasks it named (`takeNoticed`): those whose
 * outcome it carried need no read, the others are read by key. Handles keep polling at their interval besides, so
 * results are found after a lost notice or a disconnect, and where the queue cannot be created (no grant) `live` turns
 * false and they poll with back-off as before. Notices come at least once and in any order: the results cursor, not
 * the notice, decides what is new.
 *
 * A crashed client leaves its queue behind: it costs nothing while unused (SQS bills requests) and SQS deletes queues
 * unused for 30 days.
 */
export class CompletionNoticeQueue {
  private changes = 0;
  /** When to wake the handles after notices (per session, see `NoticeWakeGaps`), and the wake waiting for it. */
  private readonly gaps = new NoticeWakeGaps();
  private pendingWake: NodeJS.Timeout | undefined;
  /** Waits for any change, and waits for one session's, by session. */
  private readonly waiters = new Set<() => void>();
  private readonly sessionWaiters = new Map<string, Set<() => void>>();
  /**
   * The version each session was last woken at (oldest first, at most `WOKEN_SESSIONS`), the highest version of those
   * let go, and the last version a notice without a session woke every waiter at.
   */
  private readonly wokenAt = new Map<string, number>();
  private forgottenUpTo = -1;
  private allWokenAt = -1;
  /**
   * Tasks notices named, by session, with the outcomes they carried, until a reader takes them (null: too many, the
   * reader reads the index); `bytes` counts the outcomes' bytes, all sessions' together in `carriedBytes`.
   */
  private readonly hints = new Map<string, { tasks: Map<string, NoticeOutcome | undefined>; bytes: number } | null>();
  private carriedBytes = 0;
  private url: Promise<string | undefined> | undefined;
  private receiving = false;
  private failed = false;
  private readonly stop = new AbortController();
  private readonly logger: Logger;
  private readonly maxCarriedBytes: number;

  constructor(private readonly options: CompletionNoticeQueueOptions) {
    this.logger = options.logger ?? silentLogger();
    this.maxCarriedBytes = options.maxCarriedBytes ?? MAX_CARRIED_BYTES;
  }

  /** False once the queue could not be created or read: handles then poll with back-off. */
  get live(): boolean {
    return !this.failed && !this.stop.signal.aborted;
  }

  get version(): number {
    return this.changes;
  }

  /**
   * How often a handle looks while notices arrive: agents send one at least every 5 s while a session's tasks end, so
   * this poll only finds what a lost notice (or a disconnect) would have told.
   */
  get fallbackPollMs(): number {
    return FALLBACK_POLL_MS;
  }

  /** The queue's URL, creating the queue the first time; undefined when it cannot be created. */
  queueUrl(): Promise<string | undefined> {
    this.url ??= this.create();
    return this.url;
  }

  /**
   * Resolves true once notices came after `since` (at once if some did), false after `timeoutMs` or on abort. With
   * `sessionId`, only notices of that session count: a notice left in the queue by a session whose reader found its
   * results in the table before the notice came (or any other session's) neither wakes nor ends this wait, and the
   * queue is long-polled on for this session's own.
   */
  waitForChange(since: number, timeoutMs: number, signal?: AbortSignal, sessionId?: string): Promise<boolean> {
    if (this.changedSince(since, sessionId)) return Promise.resolve(true);
    let woken: Promise<boolean>;
    if (sessionId === undefined) {
      woken = waitForWake(this.waiters, timeoutMs, signal);
    } else {
      let waiters = this.sessionWaiters.get(sessionId);
      if (!waiters) this.sessionWaiters.set(sessionId, (waiters = new Set()));
      const own = waiters;
      woken = waitForWake(own, timeoutMs, signal).finally(() => {
        if (own.size === 0 && this.sessionWaiters.get(sessionId) === own) this.sessionWaiters.delete(sessionId);
      });
    }
    if (!signal?.aborted) this.receive();
    return woken;
  }

  /**
   * The tasks of `sessionId` that notices named since the last call (at most 100; none when more came: the reader
   * reads the session index then), each with the outcome its notice carried, if any. A task without one is a hint
   * only: the task table says whether and how it ended.
   */
  takeNoticed(sessionId: string): NoticedTask[] {
    const kept = this.hints.get(sessionId);
    this.forget(sessionId);
    if (!kept) return [];
    return [...kept.tasks].map(([taskId, outcome]) => (outcome ? { taskId, outcome } : { taskId }));
  }

  /** Stops receiving and deletes the queue (agents' later notices to it are dropped). Idempotent. */
  async close(): Promise<void> {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    if (this.pendingWake) clearTimeout(this.pendingWake);
    const url = await this.url;
    if (url === undefined) return;
    await this.options.client.send(new DeleteQueueCommand({ QueueUrl: url })).catch((err: unknown) => {
      this.logger.warn({ err, url }, 'could not delete the completion notice queue; SQS drops it after 30 idle days');
    });
  }

  private async create(): Promise<string | undefined> {
    const name = `${this.options.namePrefix}${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    try {
      const out = await this.options.client.send(
        new CreateQueueCommand({ QueueName: name, Attributes: { ...NOTICE_QUEUE_ATTRIBUTES } }),
      );
      return out.QueueUrl;
    } catch (err) {
      this.failed = true;
      this.logger.warn({ err, name }, 'could not create a completion notice queue; results are polled for');
      return undefined;
    }
  }

  /**
   * Notices of `sessions` arrived: wakes the handles at once for a session quiet for a while, else once its gap since
   * its last wake has passed (see `NoticeWakeGaps`): a new session is told at once, many agents telling of one busy
   * session cost the client one look per gap, not one per notice.
   */
  private noticed(sessions: readonly string[]): void {
    const wait = this.gaps.noticed(sessions, Date.now());
    if (this.pendingWake) clearTimeout(this.pendingWake);
    this.pendingWake = undefined;
    if (wait <= 0) this.wake();
    else this.pendingWake = setTimeout(() => this.wake(), wait).unref();
  }

  /**
   * Keeps the tasks a notice named for `takeNoticed`, with their outcomes while the kept outcomes stay within
   * `maxCarriedBytes` (bounded: the oldest session goes first). A task named again keeps the outcome it has. Each
   * outcome counts as an even share of `noticeBytes`, its notice's size, measured once: no outcome is serialized again.
   */
  private keep(sessionId: string, tasks: readonly NoticedTask[], noticeBytes: number): void {
    if (!sessionId || tasks.length === 0) return;
    let kept = this.hints.get(sessionId);
    if (kept === null) return;
    if (kept === undefined) {
      kept = { tasks: new Map(), bytes: 0 };
      this.hints.set(sessionId, kept);
    }
    let carried = 0;
    for (const task of tasks) if (task.outcome !== undefined) carried++;
    const share = carried === 0 ? 0 : Math.ceil(noticeBytes / carried);
    for (const { taskId, outcome } of tasks) {
      if (kept.tasks.get(taskId) !== undefined) continue;
      const bytes = outcome === undefined ? 0 : share;
      const fits = outcome !== undefined && this.carriedBytes + bytes <= this.maxCarriedBytes;
      kept.tasks.set(taskId, fits ? outcome : undefined);
      if (fits) {
        kept.bytes += bytes;
        this.carriedBytes += bytes;
      }
    }
    if (kept.tasks.size > NOTICED_TASKS_PER_SESSION) {
      this.forget(sessionId);
      this.hints.set(sessionId, null);
    }
    if (this.hints.size > NOTICED_SESSIONS) this.forget(this.hints.keys().next().value!);
  }

  /** Drops what is kept of a session's notices. */
  private forget(sessionId: string): void {
    this.carriedBytes -= this.hints.get(sessionId)?.bytes ?? 0;
    this.hints.delete(sessionId);
  }

  /** Whether a wake after version `since` concerned `sessionId` (any session's, without one). */
  private changedSince(since: number, sessionId: string | undefined): boolean {
    if (this.changes === since) return false;
    if (sessionId === undefined || this.allWokenAt > since) return true;
    const at = this.wokenAt.get(sessionId);
    return at !== undefined ? at > since : this.forgottenUpTo > since;
  }

  /** Whether a wait is under way (a session's set empties as its last wait ends, and leaves the map a moment later). */
  private anyWaiting(): boolean {
    if (this.waiters.size > 0) return true;
    for (const waiters of this.sessionWaiters.values()) if (waiters.size > 0) return true;
    return false;
  }

  /** Wakes the waits for any change and those of the sessions noticed since the last wake (every one for ''). */
  private wake(): void {
    this.pendingWake = undefined;
    const sessions = this.gaps.woke(Date.now());
    this.changes++;
    const woken: (() => void)[] = [...this.waiters];
    for (const sessionId of sessions) {
      if (sessionId === '') {
        // A message that names no session (malformed, or not a notice): every reader looks.
        this.allWokenAt = this.changes;
        for (const waiters of this.sessionWaiters.values()) woken.push(...waiters);
        continue;
      }
      this.wokenAt.delete(sessionId);
      this.wokenAt.set(sessionId, this.changes);
      woken.push(...(this.sessionWaiters.get(sessionId) ?? []));
    }
    for (const [sessionId, at] of this.wokenAt) {
      if (this.wokenAt.size <= WOKEN_SESSIONS) break;
      this.wokenAt.delete(sessionId);
      this.forgottenUpTo = Math.max(this.forgottenUpTo, at);
    }
    for (const waiter of new Set(woken)) waiter();
  }

  /** Long-polls the queue while anyone waits (one receive at a time). */
  private receive(): void {
    if (this.receiving || !this.live) return;
    this.receiving = true;
    void (async () => {
      let failures = 0;
      try {
        const url = await this.queueUrl();
        while (url !== undefined && this.anyWaiting() && this.live) {
          try {
            const out = await this.options.client.send(
              new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: LONG_POLL_SEC }),
              { abortSignal: this.stop.signal },
            );
            failures = 0;
            const notices = (out.Messages ?? []).map((m) => ({ ...parseNotice(m.Body), body: m.Body }));
            for (const { body, ...notice } of notices) {
              if (notice.problems.length > 0) {
                // What is sound in it still counts: its named tasks are read by key, a non-notice only wakes.
                this.logger.warn(
                  { sessionId: notice.sessionId, problems: notice.problems.slice(0, 5) },
                  'a completion notice is malformed; what it does not carry is read from the task table',
                );
              }
              this.keep(notice.sessionId, notice.tasks, Buffer.byteLength(body ?? ''));
            }
            if (notices.length > 0) this.noticed(notices.map((n) => n.sessionId));
          } catch (err) {
            if (this.stop.signal.aborted) return;
            // The handles poll meanwhile; a queue that stays unreadable (deleted, access revoked) is given up.
            if (++failures >= MAX_RECEIVE_FAILURES || err instanceof QueueDoesNotExist) {
              this.failed = true;
              this.logger.warn({ err }, 'could not receive completion notices; results are polled for');
              return;
            }
            await sleep(backoffDelay(failures - 1, SERVICE_RETRY_BACKOFF), this.stop.signal);
          }
        }
      } finally {
        this.receiving = false;
      }
    })();
  }
}
