// A client without a change feed (a deployed grid) looks for results soon after a submit, then less and less often.
import { openLocalBackends } from '../../lib/backends/local';
import { GridClient, pollBackoff } from '../../lib/client';
import { compileConfig } from '../../lib/core';
import { makeTempDir } from '../backends/local/temp-grid-dir';

describe('pollBackoff', () => {
  it('starts at the shortest wait and doubles up to the longest', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => pollBackoff(n, 50, 2_000))).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
    expect(pollBackoff(1_000, 50, 2_000)).toBe(2_000);
  });
});

describe('a results handle polling with a back-off', () => {
  it('sees a task that ends soon after its submit long before its longest poll', async () => {
    const temp = makeTempDir('htcgrid-backoff-');
    const backends = openLocalBackends(temp.dir);
    try {
      const { table, queue, store } = backends; // no change feed: it polls, as against AWS
      let looks = 0;
      const listTerminal = table.listTerminal.bind(table);
      table.listTerminal = (...args) => {
        looks++;
        return listTerminal(...args);
      };
      const client = new GridClient({
        config: compileConfig({}, 'test'),
        table,
        queue,
        store,
        pollIntervalMs: 60_000,
        minPollIntervalMs: 1,
      });
      const handle = await client.submit([{ n: 1 }]);
      const states = (async () => {
        const seen: string[] = [];
        for await (const r of handle.results()) seen.push(r.state);
        return seen;
      })();
      while (looks < 3) await new Promise((resolve) => setImmediate(resolve));
      await handle.cancel();
      // Polled every minute, the result would come after the test's timeout.
      await expect(states).resolves.toEqual(['cancelled']);
    } finally {
      await backends.close();
      temp.remove();
    }
  }, 15_000);
});
