// Read-only queries of the SQLite task table for people watching the grid: sessions newest first, live tasks by state.
import type { Statement } from 'better-sqlite3';
import type { SessionRecord, TaskRecord } from '../../core/task';
import type { BrowsePage } from '../../ports';
import { browsePageSize, decodeBrowseCursor, encodeBrowseCursor } from '../browse-cursor';
import { BOUND_LIMIT, type SqliteDatabase } from './sqlite-database';
import type { RawTaskRow, SessionRow } from './sqlite-task-table';

/** How the table maps its rows (handed in by `SqliteTaskTable`, which owns the row layout). */
export interface SqliteRowMapping {
  readonly taskColumns: string;
  readonly taskOfRaw: (row: RawTaskRow) => TaskRecord;
  readonly sessionOf: (row: SessionRow) => SessionRecord;
}

/** Sessions by creation time, then id; live tasks in rowid order, which the (session, state) index already keeps. */
export class SqliteTaskBrowser {
  private readonly sessions: Statement<[number, string, number], SessionRow>;
  private readonly live: Statement<[string, string, number, number], RawTaskRow>;

  constructor(
    db: SqliteDatabase,
    private readonly rows: SqliteRowMapping,
  ) {
    this.sessions = db.prepare<[number, string, number], SessionRow>(
      `SELECT * FROM sessions WHERE (created_at, session_id) < (?, ?)
       ORDER BY created_at DESC, session_id DESC LIMIT ${BOUND_LIMIT}`,
    );
    this.live = db
      .prepare<[string, string, number, number], RawTaskRow>(
        `SELECT ${rows.taskColumns}, rowid FROM tasks INDEXED BY tasks_by_session
         WHERE session_id = ? AND done_seq IS NULL AND state = ? AND rowid > ? ORDER BY rowid LIMIT ${BOUND_LIMIT}`,
      )
      .raw(true);
  }

  async listSessions(cursor: string | undefined, limit: number): Promise<BrowsePage<SessionRecord>> {
    const after = decodeBrowseCursor(cursor, (v): v is [number, string] => isPair(v)) ?? [Number.MAX_SAFE_INTEGER, ''];
    const want = browsePageSize(limit);
    const rows = this.sessions.all(after[0], after[1], want);
    const last = rows[rows.length - 1];
    return {
      items: rows.map((r) => this.rows.sessionOf(r)),
      cursor: rows.length < want || !last ? undefined : encodeBrowseCursor([last.created_at, last.session_id]),
    };
  }

  async listLive(
    sessionId: string,
    state: 'pending' | 'running',
    cursor: string | undefined,
    limit: number,
  ): Promise<BrowsePage<TaskRecord>> {
    const after = decodeBrowseCursor(cursor, (v): v is number => Number.isSafeInteger(v)) ?? 0;
    const want = browsePageSize(limit);
    const rows = this.live.all(sessionId, state, after, want) as unknown as [...RawTaskRow, number][];
    const last = rows[rows.length - 1];
    return {
      items: rows.map((r) => this.rows.taskOfRaw(r.slice(0, -1) as unknown as RawTaskRow)),
      cursor: rows.length < want || !last ? undefined : encodeBrowseCursor(last[last.length - 1]),
    };
  }
}

function isPair(value: unknown): value is [number, string] {
  return Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string';
}
