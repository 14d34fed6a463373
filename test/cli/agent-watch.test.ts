// `submit --wait` watching the grid's agents: one line when none is alive, one when an agent joins.
import { watchAgents } from '../../lib/cli/agent-watch';
import type { GridClient } from '../../lib/client';
import type { AgentPresence } from '../../lib/ports';
import { waitFor } from '../support/local-grid';
import { stderrLinesOfEachTest } from '../support/htcgrid-cli';

const agent: AgentPresence = {
  agentId: 'h:1:a',
  host: 'h',
  pid: 1,
  slots: 4,
  handler: 'h.f',
  runtime: 'python3.12',
  startedAt: 0,
  heartbeatAt: 0,
  expiresAt: 1,
  state: 'alive',
};

function clientSeeing(answers: (AgentPresence[] | undefined)[]): { client: GridClient; looks: () => number } {
  let looks = 0;
  const client = {
    aliveAgents: async () => answers[Math.min(looks++, answers.length - 1)],
  } as unknown as GridClient;
  return { client, looks: () => looks };
}

describe('watching the agents while waiting', () => {
  const lines = stderrLinesOfEachTest();

  it('says once that no agent is alive, then when one joins, then again if all are gone', async () => {
    const { client, looks } = clientSeeing([[], [], [agent], [agent], [], [agent]]);
    const stop = new AbortController();
    const watching = watchAgents(client, { dir: 'g' }, stop.signal, 1);
    await waitFor(() => looks() >= 6, 10_000, 'six looks');
    stop.abort();
    await watching;

    expect(lines).toEqual([
      expect.stringMatching(/^0 agents on this grid: start one with `htcgrid local up --dir g --worker/),
      'an agent joined: 1 agent(s) alive, 4 slot(s)',
      expect.stringMatching(/^0 agents on this grid/),
      'an agent joined: 1 agent(s) alive, 4 slot(s)',
    ]);
  });

  it('says nothing when the grid does not tell its agents', async () => {
    const { client } = clientSeeing([undefined]);
    await watchAgents(client, { dir: 'g' }, new AbortController().signal, 1);
    expect(lines).toEqual([]);
  });
});
