// Says when no agent is alive to run a session's tasks, so `submit --wait` and `status` never wait in silence.
import type { GridClient } from '../client';
import type { AgentPresence } from '../ports';
import { sleep } from '../timing';
import type { GridTargetFlags } from './grid-target';
import * as output from './output';

/** How often `submit --wait` looks at the agents. Agents heartbeat every 2 s and count for 6 s. */
const WATCH_INTERVAL_MS = 2_000;

/** The line for a grid without a live agent, with how to start one. */
export function noAgentMessage(flags: Pick<GridTargetFlags, 'dir'>): string {
  return `0 agents on this grid: start one with \`htcgrid local up --dir ${flags.dir} --worker <dir|zip>\`; queued tasks wait until then`;
}

/** "2 agent(s) alive, 8 slot(s)" */
export function agentsLine(agents: readonly AgentPresence[]): string {
  const slots = agents.reduce((sum, a) => sum + a.slots, 0);
  const draining = agents.filter((a) => a.state === 'draining').length;
  return `${agents.length} agent(s) alive, ${slots} slot(s)${draining ? `, ${draining} draining` : ''}`;
}

/**
 * Until `signal` aborts, prints `noAgentMessage` when the grid has no live agent (at once, then again only after one
 * came and went) and a line when one joins. Returns at once when the grid does not tell its agents.
 */
export async function watchAgents(
  client: GridClient,
  flags: Pick<GridTargetFlags, 'dir'>,
  signal: AbortSignal,
  intervalMs = WATCH_INTERVAL_MS,
): Promise<void> {
  let warned = false;
  while (!signal.aborted) {
    const agents = await client.aliveAgents();
    if (agents === undefined) return;
    if (agents.length === 0 && !warned) output.info(noAgentMessage(flags));
    else if (agents.length > 0 && warned) output.info(`an agent joined: ${agentsLine(agents)}`);
    warned = agents.length === 0;
    await sleep(intervalMs, signal, { unref: true });
  }
}
