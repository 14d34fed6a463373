// The cursors of the read-only browsing queries (`TaskBrowser`): opaque to callers, checked when handed back.
import { HtcGridError } from '../core/errors';

/** A browsing cursor that this grid did not hand out (or that was changed). */
export class InvalidBrowseCursorError extends HtcGridError {
  constructor(readonly cursor: string) {
    super(`invalid cursor '${cursor.slice(0, 80)}'`, { hint: 'pass back the cursor of the previous page unchanged' });
  }
}

/** How many items a browsing query reads for `limit`: a whole number from 1 to 1000, whatever was asked. */
export function browsePageSize(limit: number): number {
  return Math.max(1, Math.min(1000, Math.floor(limit)));
}

export function encodeBrowseCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** The value in `cursor` (undefined for none); throws `InvalidBrowseCursorError` when it is not one `check` accepts. */
export function decodeBrowseCursor<T>(
  cursor: string | undefined,
  check: (value: unknown) => value is T,
): T | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidBrowseCursorError(cursor);
  }
  if (!check(value)) throw new InvalidBrowseCursorError(cursor);
  return value;
}
