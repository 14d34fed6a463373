// When a client's completion notices wake its results handles: at once for a session quiet for a while, else once
// per gap of that session, so a busy session costs a look per gap while a new session is told at once.

export interface NoticeWakeGapsOptions {
  /**
   * The gap after a session's first wake; a wake that brought several notices of the session doubles it, a wake for one
   * notice halves it, down to this. @default 50
   */
  readonly minGapMs?: number;
  /** The longest gap; a session not woken for longer starts again (woken at once). @default 5000 */
  readonly maxGapMs?: number;
  /** Sessions remembered (the least recently woken go first). @default 1024 */
  readonly maxSessions?: number;
}

interface SessionGap {
  lastWakeAt: number;
  gapMs: number;
}

/**
 * The pure policy of `CompletionNoticeQueue`'s wakes, kept per session: a client running one interactive task after
 * another is woken at once for every one, in one session or each in its own, and many agents telling of one busy
 * session cost the client one look per gap (50 ms doubling to 5 s), not one per notice. A wake reaches the waiters of
 * the sessions noticed since the last wake (and those waiting for any change), so those sessions all count as woken.
 *
 * The gap grows only while waiting gathers notices: a wake that brought notices of several receives doubles it, a wake
 * for a single one halves it (the wait gathered nothing). Before, every wake within 5 s of the last doubled the gap, so
 * a session reused for one round trip after another (a notebook's session, a task every 100 ms) was woken 0, 0, 0,
 * 100, 300, 700, 1,500, 3,100, then 4,900 ms after its result's notice.
 */
export class NoticeWakeGaps {
  private readonly sessions = new Map<string, SessionGap>();
  /** Sessions noticed since the last wake, and how many `noticed` calls named each. */
  private readonly pending = new Map<string, number>();
  private readonly minGapMs: number;
  private readonly maxGapMs: number;
  private readonly maxSessions: number;

  constructor(options: NoticeWakeGapsOptions = {}) {
    this.minGapMs = Math.max(0, options.minGapMs ?? 50);
    this.maxGapMs = Math.max(this.minGapMs, options.maxGapMs ?? 5000);
    this.maxSessions = Math.max(1, options.maxSessions ?? 1024);
  }

  /** Notices of `sessions` arrived at `now`: how long to wait before waking the handles (0: at once). */
  noticed(sessions: Iterable<string>, now: number): number {
    for (const sessionId of new Set(sessions)) this.pending.set(sessionId, (this.pending.get(sessionId) ?? 0) + 1);
    let due = Infinity;
    for (const sessionId of this.pending.keys()) due = Math.min(due, this.dueAt(sessionId, now));
    return due === Infinity ? Infinity : Math.max(0, due - now);
  }

  /** The handles were woken at `now`: every session noticed since the last wake counts as woken; returns them. */
  woke(now: number): string[] {
    const woken = [...this.pending.keys()];
    for (const [sessionId, arrivals] of this.pending) {
      const last = this.sessions.get(sessionId);
      const gapMs = this.isQuiet(last, now)
        ? this.minGapMs
        : arrivals > 1
          ? Math.min(this.maxGapMs, last!.gapMs * 2)
          : Math.max(this.minGapMs, last!.gapMs / 2);
      // Re-inserted: the map stays ordered by last wake, oldest first.
      this.sessions.delete(sessionId);
      this.sessions.set(sessionId, { lastWakeAt: now, gapMs });
    }
    this.pending.clear();
    for (const [sessionId, gap] of this.sessions) {
      if (this.sessions.size <= this.maxSessions && !this.isQuiet(gap, now)) break;
      this.sessions.delete(sessionId);
    }
    return woken;
  }

  private dueAt(sessionId: string, now: number): number {
    const last = this.sessions.get(sessionId);
    return this.isQuiet(last, now) ? now : last!.lastWakeAt + last!.gapMs;
  }

  private isQuiet(last: SessionGap | undefined, now: number): boolean {
    return last === undefined || now - last.lastWakeAt > this.maxGapMs;
  }
}
