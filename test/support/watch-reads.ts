// Counts a task table's result reads, and the items a DynamoDB client fetches, for tests of the missing-results check.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
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
    table.readTerminalWanted = (sessionId, wanted, limit, stop) => {
      const reRead = ++seen.reReads;
      const shown = unseen ? (taskId: string) => !unseen(taskId, reRead) && wanted(taskId) : wanted;
      return readTerminalWanted(sessionId, shown, limit, stop);
    };
  }
  return seen;
}

/** Records the task ids of the items each BatchGetItem of `client` fetches, in order. */
export function recordFetchedItems(client: DynamoDBClient): string[] {
  const fetched: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = (args as { input: { RequestItems?: Record<string, { Keys?: Record<string, unknown>[] }> } }).input;
      if (context.commandName === 'BatchGetItemCommand') {
        for (const request of Object.values(input.RequestItems ?? {})) {
          for (const key of request.Keys ?? []) {
            const id = key.task_id as { S?: string } | string;
            fetched.push(typeof id === 'string' ? id : String(id.S));
          }
        }
      }
      return next(args);
    },
    { step: 'initialize', name: 'recordFetchedItems' },
  );
  return fetched;
}
