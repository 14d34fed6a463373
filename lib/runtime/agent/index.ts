// The agent's public surface.
export * from './agent';
export * from './attempt-outcome';
export type { HeldTask } from './held-task';
export { SessionSettings, type SessionSettingsOptions } from './session-settings';
export { PrefetchPolicy, type PrefetchSetting, type PrefetchPolicyOptions } from './prefetch-policy';
export { PresenceHeartbeat, type PresenceHeartbeatOptions } from './presence-heartbeat';
export { TaskOutcomeMetrics, type AttemptMeasure, type TaskOutcomeMetricsOptions } from './task-outcome-metrics';
