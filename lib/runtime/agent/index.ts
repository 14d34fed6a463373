// The agent's public surface.
export * from './agent';
export * from './attempt-outcome';
export type { HeldTask } from './held-task';
export { SessionSettings, type SessionSettingsOptions } from './session-settings';
export { PrefetchPolicy, type PrefetchSetting, type PrefetchPolicyOptions } from './prefetch-policy';
export { DiskWaitReport, DISK_WAIT_HOLD_MS } from './disk-space-gate';
export { PresenceHeartbeat, type AgentActivity, type PresenceHeartbeatOptions } from './presence-heartbeat';
export { countSlotUsage, newSlotCounters, SLOT_COUNTER_KEYS, type SlotCounters } from './slot-usage';
export { TaskOutcomeMetrics, type AttemptMeasure, type TaskOutcomeMetricsOptions } from './task-outcome-metrics';
export { openEmfSink, parseEmfEndpoint, type EmfEndpoint, type EmfSink, type EmfSinkOptions } from './emf-sink';
