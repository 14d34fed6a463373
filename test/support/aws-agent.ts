// The AWS agent's two processes as a container runs them, for tests on the emulators: the Lambda container (the RIE
// API over the local runtime) and the agent entry bin/agent.ts as its own process.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import type { GridConfig } from '../../lib/core/config';
import { GRID_ENV } from '../../lib/core';
import { resourcesToEnv, type AwsGridResources } from '../../lib/core/grid-resources';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { createLocalInvoker } from '../../lib/runtime/local';
import { RieServer } from '../../twin/stand-ins/rie-server';
import type { Emulators } from './emulators';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** The AWS tests' Python worker: squares, raises, echoes, returns large results. */
export const AWS_TEST_WORKER = path.join(REPO_ROOT, 'test', 'backends', 'aws', 'fixtures', 'worker');

/** A Lambda container's RIE API over a Python local runtime of `taskRoot` (handler `lambda_function.lambda_handler`). */
export function startPythonRie(taskRoot = AWS_TEST_WORKER, functionTimeoutSec = 30): Promise<RieServer> {
  return RieServer.start({
    invoker: createLocalInvoker({
      taskRoot,
      handler: 'lambda_function.lambda_handler',
      runtime: resolveRuntime('python3.12'),
      pythonExecutable: 'python3',
    }),
    functionTimeoutSec,
  });
}

export interface AwsAgentProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** What it wrote on stdout (EMF lines) and stderr (its log), so far. */
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

/**
 * Starts bin/agent.ts (through tsx's loader, in one process: signals reach the agent itself) on `resources`, one slot
 * behind `rie`, with `config` as its container gets it; `env` adds or overrides variables.
 */
export function spawnAwsAgent(options: {
  readonly emulators: Emulators;
  readonly resources: AwsGridResources;
  readonly config: GridConfig;
  readonly rie: RieServer;
  /** @default 0 (a stop interrupts at once) */
  readonly graceMs?: number;
  readonly env?: Record<string, string>;
}): AwsAgentProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bin', 'agent.ts')], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...options.emulators.env(),
      ...resourcesToEnv(options.resources),
      [GRID_ENV.config]: JSON.stringify(options.config.document),
      [GRID_ENV.lambdaEndpoint]: options.rie.endpoint,
      // The RIE stand-in runs in this process: there is no runtime process of the container to kill.
      HTCGRID_KILL_RUNTIME_ON_ABORT: 'false',
      HTCGRID_DRAIN_GRACE_MS: String(options.graceMs ?? 0),
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}
