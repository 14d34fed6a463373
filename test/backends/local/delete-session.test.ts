// `GridClient.deleteSession` on a local grid: rows, queue messages and payload files go at once; a running session is
// refused unless forced; an unknown one is named.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PAYLOADS_DIR, type LocalBackends } from '../../../lib/backends/local';
import type { GridClient } from '../../../lib/client';
import { SessionRunningError, UnknownSessionError } from '../../../lib/core';
import { localClientOfEachTest } from './temp-grid-dir';

describe('deleting a session of a local grid', () => {
  let dir: string;
  let backends: LocalBackends;
  let client: GridClient;
  // Every payload goes to the store, so the session has files to remove.
  localClientOfEachTest({ inline_payload_max_bytes: 0 }, (grid) => ({ dir, backends, client } = grid));

  const rowsOf = (sessionId: string): { tasks: number; messages: number; sessions: number } => {
    const db = new Database(backends.dbPath, { readonly: true });
    try {
      const count = (sql: string) => (db.prepare(sql).get(sessionId) as { n: number }).n;
      return {
        tasks: count('SELECT COUNT(*) AS n FROM tasks WHERE session_id = ?'),
        messages: count('SELECT COUNT(*) AS n FROM queue_messages WHERE session_id = ?'),
        sessions: count('SELECT COUNT(*) AS n FROM sessions WHERE session_id = ?'),
      };
    } finally {
      db.close();
    }
  };
  const sessionDir = (sessionId: string) => path.join(dir, PAYLOADS_DIR, 'sessions', sessionId);

  it('refuses a session with pending tasks, then deletes it with force (cancelled first)', async () => {
    await client.submit([{ x: 1 }, { x: 2 }, { x: 3 }], { sessionId: 'live' });
    await client.submit([{ y: 1 }], { sessionId: 'other' });
    expect(fs.existsSync(sessionDir('live'))).toBe(true);

    await expect(client.deleteSession('live')).rejects.toThrow(SessionRunningError);
    await expect(client.deleteSession('live')).rejects.toThrow(/3 task\(s\) pending or running.*--force/s);
    expect(rowsOf('live')).toEqual({ tasks: 3, messages: 3, sessions: 1 });

    await expect(client.deleteSession('live', { force: true })).resolves.toEqual({ tasks: 3 });
    expect(rowsOf('live')).toEqual({ tasks: 0, messages: 0, sessions: 0 });
    expect(fs.existsSync(sessionDir('live'))).toBe(false);
    await expect(client.session('live')).rejects.toThrow(UnknownSessionError);
    // The other session is untouched.
    expect(rowsOf('other')).toEqual({ tasks: 1, messages: 1, sessions: 1 });
    expect(fs.existsSync(sessionDir('other'))).toBe(true);
  });

  it('deletes a finished session without force', async () => {
    const handle = await client.submit([{ x: 1 }, { x: 2 }], { sessionId: 'done' });
    await handle.cancel();
    await expect(client.deleteSession('done')).resolves.toEqual({ tasks: 2 });
    expect(rowsOf('done')).toEqual({ tasks: 0, messages: 0, sessions: 0 });
    expect(fs.existsSync(sessionDir('done'))).toBe(false);
  });

  it('names an unknown session', async () => {
    await expect(client.deleteSession('nope')).rejects.toThrow(UnknownSessionError);
    await expect(client.deleteSession('nope')).rejects.toThrow("unknown session 'nope'");
  });
});
