// A session handle's results on the local grid (SQLite) whose session is force-deleted and created again under the
// same id: the stream ends with an error naming both sessions, never yielding the new session's tasks as the old one's.
import { openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { followResults as followToFile } from '../../lib/cli/follow-results';
import { GridClient } from '../../lib/client';
import { compileConfig, SessionReplacedError, UnknownSessionError } from '../../lib/core';
import { makeTempDir } from '../backends/local/temp-grid-dir';
import { finishTask } from '../support/missed-results';
import { followAcrossReplacement } from '../support/session-replaced';

const config = compileConfig({}, 'test');

let temp: ReturnType<typeof makeTempDir>;
let backends: LocalBackends;
beforeEach(() => {
  temp = makeTempDir();
  backends = openLocalBackends(temp.dir);
});
afterEach(async () => {
  await backends.close();
  temp.remove();
});

describe('SessionHandle.results on the local grid, its session deleted and created again', () => {
  it('ends with SessionReplacedError naming both creation times, never yielding the new task 2 as the old', async () => {
    // The new session's task 2 is numbered 1 in its listing, behind the stream's place (2): the count check (due
    // after 100 ms) reads the record with it.
    const client = new GridClient({ config, ...backends, missingResultsCheckMs: 100 });
    const { yielded, error, oldCreatedAt, newCreatedAt } = await followAcrossReplacement(
      client,
      backends.table,
      'reused-sdk',
    );

    // Without the check: the stream waits on (the table counts fewer ended tasks than it delivered) until aborted.
    expect(yielded).toEqual(['reused-sdk_0', 'reused-sdk_1']);
    expect(error).toBeInstanceOf(SessionReplacedError);
    expect(error).toMatchObject({
      sessionId: 'reused-sdk',
      openedCreatedAt: oldCreatedAt,
      currentCreatedAt: newCreatedAt,
    });
    const message = (error as Error).message;
    expect(message).toContain(new Date(oldCreatedAt).toISOString());
    expect(message).toContain(new Date(newCreatedAt).toISOString());
    expect(message).toMatch(/fix: .*htcgrid results reused-sdk/);
  });

  it('an unsealed session deleted while followed: its next look at the record ends the stream with UnknownSessionError', async () => {
    const client = new GridClient({ config, ...backends });
    const open = await client.openSession({ sessionId: 'gone' });
    await client.addTasks(open, 0, ['{}', '{}']);
    await finishTask(backends.table, 'gone_0');
    const handle = await client.session('gone');
    const results = handle.results({ pollIntervalMs: 20, signal: AbortSignal.timeout(30_000) })[Symbol.asyncIterator]();
    expect((await results.next()).value).toMatchObject({ taskId: 'gone_0' });
    await client.deleteSession('gone', { force: true });

    // Without the check: the stream waits on (the record kept from before), and returns only when aborted.
    await expect(results.next()).rejects.toBeInstanceOf(UnknownSessionError);
  });

  it('the CLI following a handle whose session was replaced fails with that error, naming the fix', async () => {
    const client = new GridClient({ config, ...backends });
    const handle = await client.submit([{ n: 0 }, { n: 1 }], { sessionId: 'reused-cli' });
    const oldCreatedAt = (await backends.table.getSession('reused-cli'))!.createdAt;
    await client.deleteSession('reused-cli', { force: true });
    while (Date.now() <= oldCreatedAt) await new Promise((resolve) => setTimeout(resolve, 1));
    await client.submit([{ n: 10 }, { n: 11 }], { sessionId: 'reused-cli' });
    await finishTask(backends.table, 'reused-cli_0');
    await finishTask(backends.table, 'reused-cli_1');

    const error = await followToFile(handle, { showProgress: false, out: `${temp.dir}/out.jsonl` }).catch(
      (err: Error) => err,
    );

    // Without the check: the follow ends with a summary of the new session's two results as the old one's.
    expect(error).toBeInstanceOf(SessionReplacedError);
    expect((error as Error).message).toMatch(/session 'reused-cli' was deleted and created again.*\n {2}fix: /);
  });
});
