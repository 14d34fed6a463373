// The local grid's agent options: what the grid configuration hands each agent (one per agent thread).
import { compileConfig } from '../../lib/core';
import { localAgentOptions } from '../../lib/local-grid';
import { silentLogger } from '../../lib/logging';

describe("the local grid's agent options", () => {
  const backends = { table: {}, queue: {}, store: {}, intake: {} } as Parameters<
    typeof localAgentOptions
  >[0]['backends'];

  it("give the agent the configured take-back threshold (stalled_after_ms), and the default's when unset", () => {
    const options = (overrides: Record<string, unknown>) =>
      localAgentOptions({
        config: compileConfig({ slots: 2, ...overrides }),
        backends,
        taskRoot: 'unused',
        logger: silentLogger(),
      });

    expect(options({ stalled_after_ms: 75 }).stalledAfterMs).toBe(75);
    expect(options({}).stalledAfterMs).toBe(20);
  });
});
