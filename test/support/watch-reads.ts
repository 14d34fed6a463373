// Counts a task table's result reads, for tests of the results streams' missing-results check.
import type { TaskTable } from '../../lib/ports';

export interface WatchReadsOptions {
  /**
   * Tasks the `reRead`-th call of `readTerminalWanted` (from 1) does not see, as an index replica that lags the count
   * would not (DynamoDB Local never lags).
   */
  readonly unseen?: (taskId: string, reRead: number) => boolean;
}

/**
 * Counts the calls of `table.countTerminal`, of `listTerminal` (each turn of a stream reads), those that read from
 * the start, and those of `readTerminalWanted` (re-reads), where the table offers it.
 */
export function watchReads(
  table: TaskTable,
  options: WatchReadsOptions = {},
): { counts: number; reads: number; fromStart: number; reReads: number } {
  const seen = { counts: 0, reads: 0, fromStart: 0, reReads: 0 };
  const countTerminal = table.countTerminal.bind(table);
  const listTerminal = table.listTerminal.bind(table);
  table.countTerminal = async (sessionId) => {
    seen.counts++;
    return countTerminal(sessionId);
  };
  table.listTerminal = async (sessionId, cursor, limit) => {
    seen.reads++;
    if (cursor === undefined) seen.fromStart++;
    return listTerminal(sessionId, cursor, limit);
  };
  const readTerminalWanted = table.readTerminalWanted?.bind(table);
  if (readTerminalWanted) {
    const { unseen } = options;
    table.readTerminalWanted = (sessionId, wanted, limit) => {
      const reRead = ++seen.reReads;
      const shown = unseen ? (taskId: string) => !unseen(taskId, reRead) && wanted(taskId) : wanted;
      return readTerminalWanted(sessionId, shown, limit);
    };
  }
  return seen;
}
