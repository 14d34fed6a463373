// Worker runtimes the grid supports, with the Lambda names and base images that go with them.
import { ConfigError } from './errors';

export type RuntimeFamily = 'python' | 'node' | 'provided';

export interface WorkerRuntime {
  /** Lambda's identifier, e.g. `python3.12`. */
  readonly name: string;
  readonly family: RuntimeFamily;
  /** The AWS Lambda base image the Lambda container runs in AWS. */
  readonly baseImage: string;
}

export const WORKER_RUNTIMES: readonly WorkerRuntime[] = [
  { name: 'python3.12', family: 'python', baseImage: 'public.ecr.aws/lambda/python:3.12' },
  { name: 'python3.13', family: 'python', baseImage: 'public.ecr.aws/lambda/python:3.13' },
  { name: 'nodejs22.x', family: 'node', baseImage: 'public.ecr.aws/lambda/nodejs:22' },
  { name: 'nodejs24.x', family: 'node', baseImage: 'public.ecr.aws/lambda/nodejs:24' },
  { name: 'provided.al2023', family: 'provided', baseImage: 'public.ecr.aws/lambda/provided:al2023' },
];

const ALIASES: Readonly<Record<string, string>> = {
  python: 'python3.12',
  python3: 'python3.12',
  node: 'nodejs22.x',
  nodejs: 'nodejs22.x',
  provided: 'provided.al2023',
};

/** Resolves a runtime name or alias (`python`, `node`, `provided`) to a supported runtime, or explains the fix. */
export function resolveRuntime(name: string): WorkerRuntime {
  const wanted = ALIASES[name] ?? name;
  const found = WORKER_RUNTIMES.find((r) => r.name === wanted);
  if (found) return found;
  const supported = WORKER_RUNTIMES.map((r) => r.name).join(', ');
  const family = /^python/.test(name) ? 'python3.12' : /^node/.test(name) ? 'nodejs22.x' : 'provided.al2023';
  throw new ConfigError([
    `runtime "${name}" is not supported (AWS no longer supports it, or it is unknown): use one of ${supported}, e.g. "${family}"`,
  ]);
}
