// Errors raised by the embedded (SQLite and file) backends of the local grid.
import { DiskFullError, HtcGridError, TransientServiceError } from '../../core/errors';

// A full disk is the core's error (the agent pauses on it whatever the backend); re-exported where it was first defined.
export { DiskFullError };

/** The database file was written by another schema version of the grid. */
export class SchemaVersionError extends HtcGridError {
  constructor(
    readonly dbPath: string,
    readonly found: string,
    readonly expected: number,
  ) {
    super(`database '${dbPath}' has schema version ${found}, this grid needs version ${expected}`, {
      // A database is never migrated: its version names which side is out of date.
      hint: isNewer(found, expected)
        ? 'it was made by a newer htc-grid-cdk: upgrade this one (npm install htc-grid-cdk@latest) to use it, or ' +
          'point this grid at a new grid directory'
        : 'it was made by an older htc-grid-cdk and is never migrated: use a new grid directory, or delete the old ' +
          'one (it holds only the tasks and results of past local runs)',
    });
  }
}

/** `found` (text from the database) is a version above `expected`; a version that is not a number is taken as older. */
function isNewer(found: string, expected: number): boolean {
  return /^\d+$/.test(found) && Number(found) > expected;
}

/** A payload key is not a safe relative path inside the store. */
export class InvalidPayloadKeyError extends HtcGridError {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`invalid payload key '${key}': ${problem}`, {
      hint: "use a relative path of '/'-separated names, without '.', '..', backslashes or a leading '/'",
    });
  }
}

/** `get` of a key that was never written (or was deleted). */
export class PayloadNotFoundError extends HtcGridError {
  constructor(
    readonly key: string,
    options: { cause?: unknown } = {},
  ) {
    super(`payload '${key}' not found in the payload store`, options);
  }
}

/** The database stayed locked by another process for longer than the busy timeout; worth retrying. */
export class DatabaseBusyError extends TransientServiceError {}

/** Maps SQLite's "locked" errors to a retryable error and a full disk to `DiskFullError`; rethrows the rest. */
export function translateSqliteError(error: unknown, what: string): never {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') throw new DiskFullError(what, { cause: error });
  if (
    code === 'SQLITE_BUSY' ||
    (typeof code === 'string' && code.startsWith('SQLITE_BUSY_')) ||
    code === 'SQLITE_LOCKED'
  ) {
    throw new DatabaseBusyError(`${what}: the grid database is locked by another process`, { cause: error });
  }
  throw error;
}
