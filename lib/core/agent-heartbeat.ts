// How often agents heartbeat into the grid's registry: one fact that the agents, the API's notes and the CLI share.

/**
 * Local agents write a small file (cheap: every 2 s); AWS agents one DynamoDB write each (every 20 s is under 0.2
 * million writes per agent-month). A heartbeat counts for three periods.
 */
export const AGENT_HEARTBEAT_MS = { local: 2_000, aws: 20_000 } as const;
