// When a client's completion notices wake its results handles: at once for a session quiet for a while, else once
// per gap of that session, so a busy session costs a look per gap while a new session is told at once.

export interface NoticeWakeGapsOptions {
  /** The gap after a session's first wake; each further wake within `maxGapMs` of the last doubles it. @default 50 */
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
 * another (each its own session) is woken at once for every one, and many agents telling of one busy session cost
 * the client one look per gap (50 ms doubling to 5 s), not one per notice. A wake reaches the waiters of the sessions
 * noticed since the last wake (and those waiting for any change), so those sessions all count as woken.
 */
export class NoticeWakeGaps {
  private readonly sessions = new Map<string, SessionGap>();
  private readonly pending = new Set<string>();
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
    for (const sessionId of sessions) this.pending.add(sessionId);
    let due = Infinity;
    for (const sessionId of this.pending) due = Math.min(due, this.dueAt(sessionId, now));
    return due === Infinity ? Infinity : Math.max(0, due - now);
  }

  /** The handles were woken at `now`: every session noticed since the last wake counts as woken; returns them. */
  woke(now: number): string[] {
    const woken = [...this.pending];
    for (const sessionId of woken) {
      const last = this.sessions.get(sessionId);
      const gapMs = this.isQuiet(last, now) ? this.minGapMs : Math.min(this.maxGapMs, last!.gapMs * 2);
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
