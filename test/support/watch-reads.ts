// Counts a task table's result reads, for tests of the results streams' missing-results check.
import type { TaskTable } from '../../lib/ports';

/**
 * Counts the calls of `table.countTerminal`, of `listTerminal` (each turn of a stream reads), and those that read from
 * the start.
 */
export function watchReads(table: TaskTable): { counts: number; reads: number; fromStart: number } {
  const seen = { counts: 0, reads: 0, fromStart: 0 };
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
  return seen;
}
