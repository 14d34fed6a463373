// `submit --wait` watching the grid's agents: one line when none is alive, one when an agent joins, one when agents wait
// for disk space and one when space is back; `status`'s line of the agents.
import { agentsLine, DISK_WAIT_WATCH_INTERVAL_MS, watchAgents } from '../../lib/cli/agent-watch';
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

/** Watches the agents until the client has given every answer once, then stops the watch. */
async function watchThrough(answers: AgentPresence[][]): Promise<void> {
  const { client, looks } = clientSeeing(answers);
  const stop = new AbortController();
  const watching = watchAgents(client, { dir: 'g' }, stop.signal, 1);
  await waitFor(() => looks() >= answers.length, 10_000, `${answers.length} looks`);
  stop.abort();
  await watching;
}

describe('watching the agents while waiting', () => {
  const lines = stderrLinesOfEachTest();

  it('says once that no agent is alive, then when one joins, then again if all are gone', async () => {
    await watchThrough([[], [], [agent], [agent], [], [agent]]);

    expect(lines).toEqual([
      expect.stringMatching(/^0 agents on this grid: start one with `htcgrid local up --dir g --worker/),
      'an agent joined: 1 agent(s) alive, 4 slot(s)',
      expect.stringMatching(/^0 agents on this grid/),
      'an agent joined: 1 agent(s) alive, 4 slot(s)',
    ]);
  });

  it('says once that the agents wait for disk space, with the fix, and once that space is back', async () => {
    const waiting: AgentPresence = { ...agent, waitingForDisk: true };
    const other: AgentPresence = { ...agent, agentId: 'h:2:b', pid: 2, waitingForDisk: false };
    await watchThrough([
      [agent, other],
      [waiting, other],
      [waiting, { ...other, waitingForDisk: true }],
      [waiting, other],
      [agent, other],
      [agent, other],
    ]);

    expect(lines).toEqual([
      'the disk holding the grid folder is full: 1 of 2 agent(s) wait for space, taking no new task and keeping finished results in memory; free space on that file system or delete finished sessions (htcgrid delete <session>); nothing recorded was lost and the grid carries on once there is space',
      'disk space is back: no agent waits for it any more (2 agent(s) alive, 8 slot(s))',
    ]);
  });

  it('says space is back only once an agent tells so, not when the waiting agent is gone', async () => {
    const waiting: AgentPresence = { ...agent, waitingForDisk: true };
    await watchThrough([[waiting], [], [waiting], [agent]]);

    expect(lines).toEqual([
      expect.stringMatching(/^the disk holding the grid folder is full: 1 of 1 agent\(s\) wait for space/),
      expect.stringMatching(/^0 agents on this grid/),
      'an agent joined: 1 agent(s) alive, 4 slot(s), 1 waiting for disk space',
      'disk space is back: no agent waits for it any more (1 agent(s) alive, 4 slot(s))',
    ]);
  });

  it('looks every quarter second while an agent waits for disk space, so space back is told within it', async () => {
    const waiting: AgentPresence = { ...agent, waitingForDisk: true };
    const { client, looks } = clientSeeing([[waiting], [waiting], [agent], [agent]]);
    const stop = new AbortController();
    // A minute between looks otherwise: the third look comes only because the agent waits.
    const watching = watchAgents(client, { dir: 'g' }, stop.signal, 60_000, 1);
    await waitFor(() => looks() >= 3, 10_000, 'three looks');
    stop.abort();
    await watching;

    expect(looks()).toBe(3); // once no agent waits, back to the healthy grid's pace
    expect(lines).toEqual([
      expect.stringMatching(/^the disk holding the grid folder is full: 1 of 1 agent\(s\) wait for space/),
      'disk space is back: no agent waits for it any more (1 agent(s) alive, 4 slot(s))',
    ]);
    expect(DISK_WAIT_WATCH_INTERVAL_MS).toBe(250);
  });

  it('goes back to the healthy pace once the waiting agent is gone, though no agent told that space is back', async () => {
    const waiting: AgentPresence = { ...agent, waitingForDisk: true };
    const { client, looks } = clientSeeing([[waiting], [waiting], []]);
    const stop = new AbortController();
    // A minute between looks at the healthy pace, 1 ms while an agent waits: the fourth look would come only if the
    // watch kept the quick pace with nobody left to wait.
    const watching = watchAgents(client, { dir: 'g' }, stop.signal, 60_000, 1);
    await waitFor(() => looks() >= 3, 10_000, 'three looks');
    await new Promise((resolve) => setTimeout(resolve, 200));
    stop.abort();
    await watching;

    expect(looks()).toBe(3);
    expect(lines).toEqual([
      expect.stringMatching(/^the disk holding the grid folder is full: 1 of 1 agent\(s\) wait for space/),
      expect.stringMatching(/^0 agents on this grid/),
    ]);
  });

  it("status's line counts the agents waiting for disk space; an entry of an earlier agent version counts as not", () => {
    expect(
      agentsLine([
        { ...agent, waitingForDisk: true, busySlots: 4 },
        { ...agent, waitingForDisk: false, busySlots: 0 },
        agent, // no waitingForDisk, as an earlier version wrote
      ]),
    ).toBe('3 agent(s) alive, 12 slot(s): 4 busy, 4 idle, 1 waiting for disk space');
  });

  it('says nothing when the grid does not tell its agents', async () => {
    const { client } = clientSeeing([undefined]);
    await watchAgents(client, { dir: 'g' }, new AbortController().signal, 1);
    expect(lines).toEqual([]);
  });
});
