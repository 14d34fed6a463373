// What the API can tell about the grid's agents: those alive in the grid's agent registry, from any process or host.
import type { AgentsView, AgentView } from '../core';
import type { AgentPresence, AgentRegistry } from '../ports';

export type { AgentsView, AgentTaskCounts, AgentView } from '../core';

/** Lists agents for `GET /v1/agents` and the event stream. */
export interface AgentDirectory {
  list(): Promise<AgentsView>;
}

export const NO_AGENTS: AgentDirectory = {
  list: () =>
    Promise.resolve({ source: 'none', agents: [], note: 'this API has no agent registry to read: agents unknown' }),
};

export interface RegistryAgentsOptions {
  /** How often agents heartbeat, in the note. */
  readonly heartbeatEveryMs: number;
  /**
   * A listing is reused for this long: several event streams (and their snapshots each interval) then cost one read
   * of the registry (one Query and BatchGet in DynamoDB) per period.
   * @default 1000 ms
   */
  readonly cacheMs?: number;
  /** @default Date.now */
  readonly clock?: () => number;
}

/** The agents alive in `registry`, as the API shows them. */
export function registryAgents(registry: AgentRegistry, options: RegistryAgentsOptions): AgentDirectory {
  const clock = options.clock ?? Date.now;
  const cacheMs = options.cacheMs ?? 1_000;
  const note =
    `agents heartbeat every ${options.heartbeatEveryMs / 1000} s: busy and idle slots, runtime restarts and ` +
    'counts are as of each agent’s last heartbeat';
  let cached: { at: number; view: Promise<AgentsView> } | undefined;
  return {
    list() {
      const now = clock();
      if (cached && now - cached.at < cacheMs) return cached.view;
      const view = registry.listAlive(now).then((alive) => ({
        source: 'registry' as const,
        agents: alive.map(agentView),
        note,
      }));
      cached = { at: now, view };
      // A failed read is not kept: the next call reads again.
      view.catch(() => {
        if (cached?.view === view) cached = undefined;
      });
      return view;
    },
  };
}

export function agentView(presence: AgentPresence): AgentView {
  const busy = presence.busySlots === undefined ? null : Math.min(presence.slots, Math.max(0, presence.busySlots));
  return {
    id: presence.agentId,
    host: presence.host,
    pid: presence.pid,
    state: presence.state,
    slots: presence.slots,
    busySlots: busy,
    idleSlots: busy === null ? null : presence.slots - busy,
    runtimeRestarts: presence.runtimeRestarts ?? null,
    handler: presence.handler,
    runtime: presence.runtime,
    startedAt: presence.startedAt,
    heartbeatAt: presence.heartbeatAt,
    stats: presence.tasks ?? null,
    waitingForDisk: presence.waitingForDisk === true,
  };
}
