// Reads a grid configuration file (HTC-Grid's JSON keys), applies CLI overrides and compiles it.
import fs from 'node:fs';
import { applyOverrides, compileConfig, parseHandler, type GridConfig } from '../core';
import { detectWorkerRuntime } from '../packaging';
import * as output from './output';
import { UsageError } from './usage-error';

export interface ConfigFlags {
  readonly config?: string;
  readonly handler?: string;
  readonly runtime?: string;
  readonly slots?: number;
  readonly timeoutSec?: number;
  readonly maxAttempts?: number;
  readonly python?: string;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read configuration file ${file}: ${(err as Error).message}`);
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`configuration file ${file} is not a JSON object: ${(err as Error).message}`);
  }
}

/**
 * The configuration file (if any) with flags on top; flags win. When neither sets the runtime and the worker is a
 * folder, the runtime follows the worker (a TypeScript folder runs on Node without `--runtime node`).
 */
export function loadGridConfig(
  flags: ConfigFlags & { worker?: string },
  base: Record<string, unknown> = {},
): GridConfig {
  const doc = flags.config ? readConfigFile(flags.config) : base;
  const lambda = (doc.agent_configuration as { lambda?: { runtime?: unknown } } | undefined)?.lambda;
  const runtime = flags.runtime ?? (lambda?.runtime === undefined ? detectedRuntime(flags.worker) : undefined);
  const overrides: Record<string, unknown> = {
    slots: flags.slots,
    task_timeout_sec: flags.timeoutSec,
    max_attempts: flags.maxAttempts,
    python_executable: flags.python,
    runtime,
  };
  if (flags.handler) {
    const { module, function: fn } = parseHandler(flags.handler);
    overrides.lambda_handler_file_name = module;
    overrides.lambda_handler_function_name = fn;
  }
  const config = compileConfig(applyOverrides(doc, overrides), flags.config ?? 'configuration');
  for (const note of config.ignoredKeys ?? []) output.info(`warning: ${note}`);
  return config;
}

function detectedRuntime(worker: string | undefined): string | undefined {
  if (!worker || !fs.existsSync(worker) || !fs.statSync(worker).isDirectory()) return undefined;
  try {
    return detectWorkerRuntime(worker);
  } catch {
    return undefined; // bundling reports the problem with the folder, with more context
  }
}
