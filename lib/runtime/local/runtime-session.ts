// The life of one runtime process as the invoker sees it, whatever the transport (pipes or the Runtime API).
import path from 'node:path';
import { WorkerInitError } from '../../core/errors';
import type { TaskError } from '../../core/task';
import type { Invocation, InvokeResult } from '../../ports';
import { describeExit } from '../invoke-results';
import type { ExitInfo } from './runtime-process';

export interface RuntimeSession {
  /** Resolves when the handler is loaded; rejects with `WorkerInitError` when it cannot be. */
  readonly ready: Promise<void>;
  /** Resolves once, when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /**
   * Runs one invocation with a budget of `timeoutMs` from when it starts: the runtime's answer, or a `runtime-crash`
   * when the process dies first. A session that takes several calls at once (`pipelined`) runs them in order; one
   * the process died before starting resolves `busy` (nothing of it ran).
   */
  call(invocation: Invocation, timeoutMs: number): Promise<InvokeResult>;
  /** Accepts a call while another runs, written ahead so the runtime starts it as soon as it answers the one before. */
  readonly pipelined: boolean;
  /**
   * Asks the runtime to take back a call written ahead (pipelined sessions that can): if it has not started, its
   * `call` resolves `withdrawn` (see `withdrawnResult`) and it never runs; if it has, nothing changes and its own
   * answer comes. The runtime decides, so a call never both runs and comes back withdrawn.
   */
  withdraw?(invocation: Invocation): void;
  /** False once the process is dead or about to die (it reported an uncaught error). */
  readonly healthy: boolean;
  /** The process id, once spawned (for diagnostics and tests). */
  readonly pid: number | undefined;
  kill(): void;
}

/** Where a handler was being loaded from, for error messages. */
export interface LoadTarget {
  readonly handler: string;
  readonly taskRoot: string;
  readonly runtimeName: string;
  readonly command: string;
}

const HINTS: Readonly<Record<string, string>> = {
  'Runtime.ImportModuleError':
    'the handler module must be at the root of the worker zip; check lambda_handler_file_name and the zip layout',
  'Runtime.HandlerNotFound': 'check lambda_handler_function_name: the module has no such function',
  'Runtime.MalformedHandlerName': 'the handler must look like <file>.<function>, e.g. lambda_function.lambda_handler',
  'Runtime.UserCodeSyntaxError': 'fix the syntax error in the worker module',
};

/** The runtime reported that the handler cannot be loaded. */
export function initErrorFrom(error: TaskError, target: LoadTarget): WorkerInitError {
  const detail = error.stack.length > 0 ? `\n${error.stack.join('').trimEnd()}` : '';
  return new WorkerInitError(
    `cannot load handler '${target.handler}' from ${target.taskRoot} (${target.runtimeName}): ${error.type}: ${error.message}${detail}`,
    error.type,
    { hint: missingDependencyHint(error, target) ?? HINTS[error.type] },
  );
}

/**
 * When the handler module was found but imports a module the worker does not hold (Python's `No module named 'x'`,
 * Node's `Cannot find module 'x'`), the fix is to ship that dependency, not to move the handler.
 */
function missingDependencyHint(error: TaskError, target: LoadTarget): string | undefined {
  const found = /No module named '([^']+)'|Cannot find (?:module|package) '([^']+)'/.exec(error.message);
  const missing = found?.[1] ?? found?.[2];
  if (missing === undefined) return undefined;
  const handlerModule = target.handler.slice(0, target.handler.lastIndexOf('.'));
  const topLevel = (name: string): string => name.replace(/^\.\//, '').split(/[./]/)[0]!;
  if (topLevel(missing) === topLevel(handlerModule) || path.isAbsolute(missing)) return undefined;
  const manifest = target.runtimeName.startsWith('node') ? 'package.json dependencies' : 'requirements.txt';
  return (
    `the handler module was found, but it imports '${missing}', which the worker does not hold: list it in ` +
    `${manifest} in the worker folder (bundling installs it into the zip; \`htcgrid bundle <dir> -o worker.zip\` ` +
    'shows the result), or put it at the root of the zip'
  );
}

/** The runtime process ended (or never started) before the handler was loaded. */
export function initExitError(exit: ExitInfo, target: LoadTarget, stderr: string): WorkerInitError {
  if (exit.spawnError) {
    return new WorkerInitError(
      `cannot start the ${target.runtimeName} runtime with '${target.command}' for handler '${target.handler}' in ${target.taskRoot}: ${exit.spawnError.message}`,
      'Runtime.InvalidEntrypoint',
      { hint: 'set the runtime executable (pythonExecutable / nodeExecutable) or make the bootstrap executable' },
    );
  }
  const tail = stderr.trim() ? `\n${stderr.trim()}` : '';
  return new WorkerInitError(
    `the ${target.runtimeName} runtime exited (${describeExit(exit.code, exit.signal)}) before handler '${target.handler}' from ${target.taskRoot} was loaded${tail}`,
    'Runtime.ExitError',
  );
}
