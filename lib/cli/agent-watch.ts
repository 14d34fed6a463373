// Says when no agent is alive to run a session's tasks, or when the agents wait for disk space, so `submit --wait`
// and `status` never wait in silence.
import type { GridClient } from '../client';
import { DISK_FULL_FIX, DISK_FULL_PROBLEM } from '../core';
import type { AgentPresence } from '../ports';
import { sleep } from '../timing';
import type { GridTargetFlags } from './grid-target';
import * as output from './output';

/** How often `submit --wait` looks at a local grid's agents: they heartbeat every 2 s and count for 6 s. */
const WATCH_INTERVAL_MS = 2_000;
/** On AWS each look is a billed Query and BatchGet, and agents heartbeat every 20 s (counting for 60 s). */
const AWS_WATCH_INTERVAL_MS = 20_000;
/**
 * How often it looks while an agent waits for disk space: agents write their entry at once when space is back (after
 * `DISK_WAIT_HOLD_MS`), so "space is back" is printed within a quarter second of that. Only then: a healthy grid is
 * looked at no more often than before.
 */
export const DISK_WAIT_WATCH_INTERVAL_MS = 250;

/** The line for a grid without a live agent, with how to start one. */
function isAws(flags: AgentWatchTarget): boolean {
  return flags.grid === 'aws' || flags.stack !== undefined || flags.outputs !== undefined;
}

export function noAgentMessage(flags: AgentWatchTarget): string {
  if (isAws(flags)) {
    return '0 agents alive on this grid right now: its service starts agents when tasks are queued (from zero, in about a minute); if none comes, look at the ECS service events and the agent logs';
  }
  return `0 agents on this grid: start one with \`htcgrid local up --dir ${flags.dir} --worker <dir|zip>\`; queued tasks wait until then`;
}

/** Which grid the messages are about. */
export type AgentWatchTarget = Pick<GridTargetFlags, 'dir'> &
  Partial<Pick<GridTargetFlags, 'grid' | 'stack' | 'outputs'>>;

/** Busy slots, idle slots and runtime restarts over the agents that tell them (an earlier agent version does not). */
export function slotUsageOf(
  agents: readonly AgentPresence[],
): { busySlots: number; idleSlots: number; runtimeRestarts: number } | undefined {
  const telling = agents.filter((a) => a.busySlots !== undefined);
  if (telling.length === 0) return undefined;
  const busySlots = telling.reduce((sum, a) => sum + Math.min(a.slots, a.busySlots!), 0);
  return {
    busySlots,
    idleSlots: telling.reduce((sum, a) => sum + a.slots, 0) - busySlots,
    runtimeRestarts: telling.reduce((sum, a) => sum + (a.runtimeRestarts ?? 0), 0),
  };
}

/** How many of `agents` wait for disk space (an agent of an earlier version does not tell, and counts as not). */
export function waitingForDiskOf(agents: readonly AgentPresence[]): number {
  return agents.filter((a) => a.waitingForDisk === true).length;
}

/**
 * "2 agent(s) alive, 8 slot(s): 3 busy, 5 idle, 1 runtime restart(s), 1 draining, 1 waiting for disk space" (as of
 * the agents' last heartbeats)
 */
export function agentsLine(agents: readonly AgentPresence[]): string {
  const slots = agents.reduce((sum, a) => sum + a.slots, 0);
  const draining = agents.filter((a) => a.state === 'draining').length;
  const waiting = waitingForDiskOf(agents);
  const usage = slotUsageOf(agents);
  const usageText = usage
    ? `: ${usage.busySlots} busy, ${usage.idleSlots} idle${usage.runtimeRestarts ? `, ${usage.runtimeRestarts} runtime restart(s)` : ''}`
    : '';
  return (
    `${agents.length} agent(s) alive, ${slots} slot(s)${usageText}${draining ? `, ${draining} draining` : ''}` +
    (waiting ? `, ${waiting} waiting for disk space` : '')
  );
}

/** The line for agents that wait for disk space: the problem and the fix, as `DiskFullError` says them. */
export function diskFullMessage(agents: readonly AgentPresence[]): string {
  return `${DISK_FULL_PROBLEM}: ${waitingForDiskOf(agents)} of ${agents.length} agent(s) wait for space, taking no new task and keeping finished results in memory; ${DISK_FULL_FIX}`;
}

/**
 * Until `signal` aborts, prints `noAgentMessage` when the grid has no live agent (at once, then again only after one
 * came and went) and a line when one joins; `diskFullMessage` when agents start waiting for disk space, and a line
 * when none waits any more (looking every `diskWaitIntervalMs` meanwhile). Returns at once when the grid does not tell
 * its agents.
 */
export async function watchAgents(
  client: GridClient,
  flags: AgentWatchTarget,
  signal: AbortSignal,
  intervalMs = isAws(flags) ? AWS_WATCH_INTERVAL_MS : WATCH_INTERVAL_MS,
  diskWaitIntervalMs = Math.min(intervalMs, DISK_WAIT_WATCH_INTERVAL_MS),
): Promise<void> {
  let warned = false;
  let diskFull = false;
  while (!signal.aborted) {
    const agents = await client.aliveAgents();
    if (agents === undefined) return;
    if (agents.length === 0 && !warned) output.info(noAgentMessage(flags));
    else if (agents.length > 0 && warned) output.info(`an agent joined: ${agentsLine(agents)}`);
    warned = agents.length === 0;
    // Agents tell a wait from when it starts until space has been back a second (DISK_WAIT_HOLD_MS): a disk that
    // fills again at once is one wait here. With no agent left, the line above says what matters.
    const waiting = waitingForDiskOf(agents);
    if (waiting > 0 && !diskFull) output.info(diskFullMessage(agents));
    else if (waiting === 0 && diskFull && agents.length > 0) {
      output.info(`disk space is back: no agent waits for it any more (${agentsLine(agents)})`);
    }
    if (waiting > 0) diskFull = true;
    else if (agents.length > 0) diskFull = false;
    // Quickly only while a live agent waits: space back is told by an agent, and one that went is told above.
    await sleep(waiting > 0 ? diskWaitIntervalMs : intervalMs, signal, { unref: true });
  }
}
