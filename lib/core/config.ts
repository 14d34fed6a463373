// The grid configuration: one schema with documented defaults, HTC-Grid's keys where they apply.
import os from 'node:os';
import { z } from 'zod';
import { ConfigError } from './errors';
import { handlerString } from './handler';
import { closestName } from './closest-name';
import { IGNORED_HTCGRID_KEYS, IGNORED_HTCGRID_LAMBDA_KEYS } from './htc-grid-keys';
import { resolveRuntime, type WorkerRuntime } from './runtime-kind';

const seconds = (def: number, what: string) => z.number().positive().default(def).describe(what);

/**
 * Default of `stalled_after_ms`: a slot whose running task has run this long is stalled, so what was sent ahead behind
 * it is taken back and it gets no more until that task ends. Several times the longest task that is still sent ahead
 * (5 ms on average), so a short task that ran a little long costs nothing; short enough that no task waits noticeably
 * while a slot is free.
 */
export const DEFAULT_STALLED_AFTER_MS = 20;

/** Default of `task_retention_sec`: finished sessions are kept 7 days, on a local grid and in the AWS table alike. */
export const DEFAULT_TASK_RETENTION_SEC = 7 * 24 * 3600;

const lambdaObject = z.looseObject({
  /** Module of the handler, without extension. HTC-Grid's key. */
  lambda_handler_file_name: z.string().default('lambda_function').describe('module holding the handler'),
  /** Function of the handler. HTC-Grid's key. */
  lambda_handler_function_name: z.string().default('lambda_handler').describe('handler function'),
  /** Lambda runtime of the worker (`python3.12`, `nodejs22.x`, `provided.al2023`, or `python`/`node`/`provided`). */
  runtime: z.string().default('python3.12'),
  /** The function name the runtime reports (`context.function_name`); lambda-rie serves only `function`. */
  function_name: z.string().min(1).default('function'),
  /** Memory the worker is told it has (`context.memory_limit_in_mb`), in MiB. */
  memory_size_mb: z.number().int().min(128).max(10240).default(3008),
  /** Worker zip location (`s3://bucket/key`) in AWS; set by the CDK stack. */
  s3_source: z.string().optional(),
});
const lambdaSchema = lambdaObject.prefault({});

/**
 * The raw document: HTC-Grid's `python_runtime_grid_config.json` keys plus ours. HTC-Grid keys that mean nothing here
 * are kept and ignored (`IGNORED_HTCGRID_KEYS`); any other unknown key is an error (see `unknownKeyIssues`).
 */
export const gridConfigSchema = z.looseObject({
  /** Name of the grid; prefixes AWS resource names. HTC-Grid's `project_name` is accepted as a fallback. */
  grid_name: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,30}$/, 'use 1-31 lowercase letters, digits or dashes, starting with a letter')
    .optional(),
  project_name: z.string().optional(),
  region: z.string().optional(),
  agent_configuration: z
    .looseObject({
      lambda: lambdaSchema,
    })
    .prefault({}),
  /** Concurrent tasks per agent. Locally one runtime process per slot. */
  slots: z.number().int().min(1).max(1024).optional(),
  task_timeout_sec: seconds(900, 'per-task deadline; the attempt is killed after it'),
  max_attempts: z.number().int().min(1).max(100).default(3),
  /** Handler exception class names that are never retried. */
  non_retryable_error_types: z.array(z.string().min(1)).default([]),
  /** Number of priority levels (HTC-Grid: `task_queue_config.priorities`); priorities are 0..levels-1. */
  priority_levels: z.number().int().min(1).max(10).default(3),
  /** Lease expiry: a task whose agent stops heartbeating for this long is re-queued. HTC-Grid's key. */
  task_ttl_expiration_offset_sec: seconds(30, 'lease expiry'),
  /** Lease refresh period. HTC-Grid's key. Must be below the expiry. */
  task_ttl_refresh_interval_sec: seconds(5, 'lease refresh period'),
  /** How often running tasks are checked for cancellation. */
  lease_check_interval_sec: seconds(1, 'cancellation check period'),
  /**
   * How long a slot's running task may run before the tasks sent ahead behind it (in the same runtime) are taken back
   * and run in other slots. Optional in the document (default `DEFAULT_STALLED_AFTER_MS`, applied when compiling).
   */
  stalled_after_ms: z
    .number({ error: 'use a number of milliseconds above 0, e.g. 20 (the default)' })
    .positive({ error: 'use a number of milliseconds above 0, e.g. 20 (the default)' })
    .optional(),
  /** Idle back-off after an empty receive. HTC-Grid's key. */
  empty_task_queue_backoff_timeout_sec: seconds(0.5, 'idle back-off'),
  /** Queue visibility timeout between receive and claim; extended while a task runs. */
  agent_task_visibility_timeout_sec: seconds(60, 'queue visibility timeout'),
  /**
   * How long a finished session is kept after its last task finished: the AWS table's TTL, and on a local grid the
   * age at which `local up` deletes it (rows and payload files) in small batches. Default 7 days.
   */
  task_retention_sec: seconds(DEFAULT_TASK_RETENTION_SEC, 'retention of finished sessions'),
  /** How often the reaper looks for expired leases. */
  reaper_interval_sec: seconds(5, 'reaper period'),
  /** Payloads and results up to this size travel inline; larger ones go to the payload store. */
  inline_payload_max_bytes: z
    .number()
    .int()
    .min(0)
    .max(256 * 1024)
    .default(32 * 1024),
  /** Largest accepted payload or result (Lambda's synchronous invoke limit by default). */
  max_payload_bytes: z
    .number()
    .int()
    .min(1)
    .default(6 * 1024 * 1024),
  /** Tasks received per batch. */
  receive_batch_size: z.number().int().min(1).max(1000).default(10),
  /** Python executable for local Python workers. */
  python_executable: z.string().min(1).default('python3'),
  max_htc_agents: z.number().int().min(1).default(100),
  min_htc_agents: z.number().int().min(0).default(0),
});

export type GridConfigDocument = z.input<typeof gridConfigSchema>;

/** The compiled configuration: defaults applied, units normalised to milliseconds, names derived once. */
export interface GridConfig {
  readonly gridName: string;
  readonly region?: string;
  readonly handler: string;
  readonly handlerFileName: string;
  readonly handlerFunctionName: string;
  readonly runtime: WorkerRuntime;
  readonly functionName: string;
  readonly memorySizeMb: number;
  readonly workerS3Source?: string;
  readonly slots: number;
  readonly taskTimeoutMs: number;
  readonly maxAttempts: number;
  readonly nonRetryableErrorTypes: readonly string[];
  readonly priorityLevels: number;
  readonly leaseExpiryMs: number;
  readonly leaseRefreshMs: number;
  readonly leaseCheckMs: number;
  /** When tasks sent ahead behind a slot's running task are taken back (`stalled_after_ms`). */
  readonly stalledAfterMs: number;
  readonly emptyQueueBackoffMs: number;
  readonly queueVisibilityMs: number;
  readonly reaperIntervalMs: number;
  /** Finished sessions are deleted this long after their last task finished (`task_retention_sec`). */
  readonly retentionMs: number;
  readonly inlinePayloadMaxBytes: number;
  readonly maxPayloadBytes: number;
  readonly receiveBatchSize: number;
  readonly pythonExecutable: string;
  readonly minAgents: number;
  readonly maxAgents: number;
  /** The validated document with defaults filled in; this is what reaches the agent as one JSON document. */
  readonly document: z.output<typeof gridConfigSchema>;
  /** HTC-Grid keys the document holds that are ignored here, each with why (for a warning). */
  readonly ignoredKeys?: readonly string[];
}

/** Validates a raw configuration document (all problems reported at once) and compiles it. */
export function compileConfig(raw: unknown = {}, source = 'configuration'): GridConfig {
  const parsed = gridConfigSchema.safeParse(raw ?? {}, { reportInput: true });
  const { issues, ignored } = unknownKeyIssues(raw as Record<string, unknown> | undefined, source);
  if (!parsed.success) {
    throw new ConfigError([
      ...issues,
      ...parsed.error.issues.map((issue) => {
        const key = issue.path.join('.') || '(root)';
        const got = 'input' in issue && issue.input !== undefined ? ` (got ${JSON.stringify(issue.input)})` : '';
        return `${source}: ${key}: ${issue.message}${got}`;
      }),
    ]);
  }
  const doc = parsed.data;
  const lambda = doc.agent_configuration.lambda;
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ConfigError) issues.push(...err.issues.map((i) => `${source}: ${i}`));
      else throw err;
      return undefined;
    }
  };
  const handler = attempt(() => handlerString(lambda.lambda_handler_file_name, lambda.lambda_handler_function_name));
  const runtime = attempt(() => resolveRuntime(lambda.runtime));
  if (doc.task_ttl_refresh_interval_sec >= doc.task_ttl_expiration_offset_sec) {
    issues.push(
      `${source}: task_ttl_refresh_interval_sec (${doc.task_ttl_refresh_interval_sec}) must be below task_ttl_expiration_offset_sec (${doc.task_ttl_expiration_offset_sec}): a lease would expire before it is refreshed`,
    );
  }
  if (doc.agent_task_visibility_timeout_sec <= doc.task_ttl_refresh_interval_sec) {
    issues.push(
      `${source}: agent_task_visibility_timeout_sec (${doc.agent_task_visibility_timeout_sec}) must exceed task_ttl_refresh_interval_sec (${doc.task_ttl_refresh_interval_sec}): in AWS a claimed task's message guards it until its lease is first refreshed, and must not reappear before`,
    );
  }
  if (doc.min_htc_agents > doc.max_htc_agents) {
    issues.push(
      `${source}: min_htc_agents (${doc.min_htc_agents}) must not exceed max_htc_agents (${doc.max_htc_agents})`,
    );
  }
  if (doc.inline_payload_max_bytes > doc.max_payload_bytes) {
    issues.push(`${source}: inline_payload_max_bytes must not exceed max_payload_bytes`);
  }
  if (issues.length > 0 || handler === undefined || runtime === undefined) throw new ConfigError(issues);
  const gridName = doc.grid_name ?? sanitizeName(doc.project_name) ?? 'htc-grid';
  return {
    gridName,
    region: doc.region,
    handler,
    handlerFileName: lambda.lambda_handler_file_name,
    handlerFunctionName: lambda.lambda_handler_function_name,
    runtime,
    functionName: lambda.function_name,
    memorySizeMb: lambda.memory_size_mb,
    workerS3Source: lambda.s3_source,
    slots: doc.slots ?? Math.max(1, os.availableParallelism()),
    taskTimeoutMs: Math.round(doc.task_timeout_sec * 1000),
    maxAttempts: doc.max_attempts,
    nonRetryableErrorTypes: doc.non_retryable_error_types,
    priorityLevels: doc.priority_levels,
    leaseExpiryMs: Math.round(doc.task_ttl_expiration_offset_sec * 1000),
    leaseRefreshMs: Math.round(doc.task_ttl_refresh_interval_sec * 1000),
    leaseCheckMs: Math.round(doc.lease_check_interval_sec * 1000),
    stalledAfterMs: doc.stalled_after_ms ?? DEFAULT_STALLED_AFTER_MS,
    emptyQueueBackoffMs: Math.round(doc.empty_task_queue_backoff_timeout_sec * 1000),
    queueVisibilityMs: Math.round(doc.agent_task_visibility_timeout_sec * 1000),
    reaperIntervalMs: Math.round(doc.reaper_interval_sec * 1000),
    retentionMs: Math.round(doc.task_retention_sec * 1000),
    inlinePayloadMaxBytes: doc.inline_payload_max_bytes,
    maxPayloadBytes: doc.max_payload_bytes,
    receiveBatchSize: doc.receive_batch_size,
    pythonExecutable: doc.python_executable,
    minAgents: doc.min_htc_agents,
    maxAgents: doc.max_htc_agents,
    document: doc,
    ignoredKeys: ignored,
  };
}

/**
 * `task_retention_sec` as the whole seconds a DynamoDB TTL adds to a finish time (at least 1): the AWS table's items
 * and the local grid's expiry read the same key.
 */
export function retentionSecOf(config: Pick<GridConfig, 'retentionMs'>): number {
  return Math.max(1, Math.ceil(config.retentionMs / 1000));
}

/**
 * Keys of `raw` the schema does not know: an HTC-Grid key ignored on purpose is noted with why, any other is an issue
 * naming the closest known key (a typo such as `max_attemps` must not silently leave the default in force).
 */
export function unknownKeyIssues(
  raw: Record<string, unknown> | undefined,
  source: string,
): { issues: string[]; ignored: string[] } {
  const issues: string[] = [];
  const ignored: string[] = [];
  const check = (
    doc: unknown,
    prefix: string,
    known: readonly string[],
    ignoredHere: Readonly<Record<string, string>>,
  ): void => {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return;
    for (const key of Object.keys(doc)) {
      if (known.includes(key)) continue;
      if (Object.hasOwn(ignoredHere, key)) {
        ignored.push(`${source}: ${prefix}${key}: an HTC-Grid key ignored here (${ignoredHere[key]})`);
        continue;
      }
      if (prefix === '' && Object.hasOwn(lambdaObject.shape, key)) {
        issues.push(
          `${source}: ${key}: not a top-level key: put it under agent_configuration.lambda (or pass it as -c ${key}=...)`,
        );
        continue;
      }
      const guess = closestName(key, known);
      issues.push(
        `${source}: ${prefix}${key}: unknown configuration key${guess ? `: did you mean ${prefix}${guess}?` : ''} (the README's Configuration section lists every key)`,
      );
    }
  };
  check(raw, '', Object.keys(gridConfigSchema.shape), IGNORED_HTCGRID_KEYS);
  const agentConfiguration = raw?.agent_configuration as Record<string, unknown> | undefined;
  check(agentConfiguration, 'agent_configuration.', ['lambda'], {});
  check(
    agentConfiguration?.lambda,
    'agent_configuration.lambda.',
    Object.keys(lambdaObject.shape),
    IGNORED_HTCGRID_LAMBDA_KEYS,
  );
  return { issues, ignored };
}

/**
 * Applies flat overrides (CDK `-c key=value`, CLI flags) on top of a document; the override wins.
 * Handler keys go under `agent_configuration.lambda`; numeric strings become numbers.
 */
export function applyOverrides(
  doc: Record<string, unknown>,
  overrides: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(doc);
  const agentConfiguration = { ...((out.agent_configuration as Record<string, unknown> | undefined) ?? {}) };
  const lambda = { ...((agentConfiguration.lambda as Record<string, unknown> | undefined) ?? {}) };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const v = coerce(value);
    if (LAMBDA_KEYS.has(key)) lambda[key] = v;
    else out[key] = v;
  }
  agentConfiguration.lambda = lambda;
  out.agent_configuration = agentConfiguration;
  return out;
}

const LAMBDA_KEYS = new Set([
  'lambda_handler_file_name',
  'lambda_handler_function_name',
  'runtime',
  'function_name',
  'memory_size_mb',
  's3_source',
]);

function coerce(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  if (/^\s*[[{]/.test(value)) {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value;
    }
  }
  return value;
}

function sanitizeName(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const clean = name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, 31);
  return clean ? clean : undefined;
}
