// The part of the grid configuration a client applies at submit time: what the ClientConfig output and the API get.
import type { GridConfig } from '../core/config';

/** The configuration keys a client applies at submit time (limits, per-task defaults, how long tasks are kept). */
export const CLIENT_CONFIG_KEYS = [
  'max_attempts',
  'task_timeout_sec',
  'priority_levels',
  'inline_payload_max_bytes',
  'max_payload_bytes',
  'non_retryable_error_types',
  // The TTL of the tasks a client or the API cancels (the same as the agents and the reaper write).
  'task_retention_sec',
] as const;

/**
 * The client's share of the configuration document: small enough for a Lambda's 4 KB of environment whatever else
 * an HTC-Grid configuration file carries.
 */
export function clientConfigurationDocument(document: GridConfig['document']): Record<string, unknown> {
  return Object.fromEntries(CLIENT_CONFIG_KEYS.map((key) => [key, document[key]]));
}
