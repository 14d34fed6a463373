// What the API can tell about the grid's agents. Agents do not register yet: only those of this process are known.

export interface AgentStatsView {
  readonly claimed: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly retried: number;
  readonly released: number;
  readonly dropped: number;
}

export interface AgentView {
  /** The agent's lease owner name (`host:pid:id`), as task histories show it. */
  readonly id: string;
  readonly state: 'alive' | 'draining';
  /** Slots (runtimes) it runs tasks in. */
  readonly slots: number;
  readonly startedAt: number;
  /** Counts since it started. */
  readonly stats: AgentStatsView;
}

export interface AgentsView {
  /**
   * Where the list comes from. `this-process`: the agents the API's own process runs (`htcgrid local up --http`).
   * `none`: the API cannot see any agent (another process runs them, or the grid is in AWS).
   */
  readonly source: 'this-process' | 'none';
  readonly agents: readonly AgentView[];
  /** What is not known. */
  readonly note: string;
}

/** Lists agents for `GET /v1/agents`. */
export interface AgentDirectory {
  list(): AgentsView;
}

/** Agents register with the grid only in a later version: say so. */
export const NO_AGENT_REGISTRY_NOTE =
  'agents do not register with the grid yet: only agents running in the process serving this API are listed; ' +
  'busy and idle slots, runtime restarts and agents of other processes or hosts are not known';

export const NO_AGENTS: AgentDirectory = {
  list: () => ({ source: 'none', agents: [], note: NO_AGENT_REGISTRY_NOTE }),
};
