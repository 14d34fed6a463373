// Reads a grid configuration file (HTC-Grid's JSON keys), applies CLI overrides and compiles it.
import fs from 'node:fs';
import { applyOverrides, compileConfig, parseHandler, type GridConfig } from '../core';
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

/** The configuration file (if any) with flags on top; flags win. */
export function loadGridConfig(flags: ConfigFlags, base: Record<string, unknown> = {}): GridConfig {
  const doc = flags.config ? readConfigFile(flags.config) : base;
  const overrides: Record<string, unknown> = {
    slots: flags.slots,
    task_timeout_sec: flags.timeoutSec,
    max_attempts: flags.maxAttempts,
    python_executable: flags.python,
    runtime: flags.runtime,
  };
  if (flags.handler) {
    const { module, function: fn } = parseHandler(flags.handler);
    overrides.lambda_handler_file_name = module;
    overrides.lambda_handler_function_name = fn;
  }
  return compileConfig(applyOverrides(doc, overrides), flags.config ?? 'configuration');
}
