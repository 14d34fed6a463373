// What the agent needs to know about a task's session (its non-retryable error types), read once and kept in a small cache.
import type { Logger } from 'pino';
import type { TaskTable } from '../../ports';

export interface SessionSettingsOptions {
  readonly table: Pick<TaskTable, 'getSession'>;
  /** The grid-wide list (`non_retryable_error_types`), always honoured. */
  readonly gridNonRetryable: readonly string[];
  /**
   * Sessions remembered at once; the least recently used is forgotten first.
   * @default 256
   */
  readonly maxSessions?: number;
  readonly logger: Logger;
}

/**
 * A session's settings never change once it was created, so they are cached for as long as there is room. Only a
 * failed attempt with a handler error ever asks, so the hot path of succeeding tasks never reads the session.
 */
export class SessionSettings {
  private readonly cache = new Map<string, Promise<ReadonlySet<string>>>();
  private readonly maxSessions: number;

  constructor(private readonly options: SessionSettingsOptions) {
    this.maxSessions = Math.max(1, options.maxSessions ?? 256);
  }

  /**
   * Error types never retried for tasks of `sessionId`: the grid's list plus the session's own. If the session cannot
   * be read, the grid's list alone (a retry too many beats a task failed for a read error).
   */
  nonRetryableErrorTypes(sessionId: string): Promise<ReadonlySet<string>> {
    const cached = this.cache.get(sessionId);
    if (cached) {
      // Refresh its place in the LRU order.
      this.cache.delete(sessionId);
      this.cache.set(sessionId, cached);
      return cached;
    }
    const loading = this.load(sessionId);
    this.cache.set(sessionId, loading);
    while (this.cache.size > this.maxSessions) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
    return loading;
  }

  private async load(sessionId: string): Promise<ReadonlySet<string>> {
    const types = new Set(this.options.gridNonRetryable);
    try {
      const session = await this.options.table.getSession(sessionId);
      for (const type of session?.nonRetryableErrorTypes ?? []) types.add(type);
    } catch (err) {
      // Not cached: the next failure of this session asks again.
      this.cache.delete(sessionId);
      this.options.logger.warn({ err, sessionId }, 'could not read the session; using the grid non-retryable types');
    }
    return types;
  }
}
