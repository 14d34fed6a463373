// Runs a worker's `pip install -r requirements.txt --target` and turns pip's failures into errors that name the requirement.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BundlingError } from '../core';
import type { PipInstallStep } from './bundle-plan';
import { manylinuxTag } from './lambda-platform';

/** pip failed: `requirements` names the requirement(s) its output blames, `output` is the tail of what it printed. */
export class PipInstallError extends BundlingError {
  constructor(
    message: string,
    readonly requirements: readonly string[],
    readonly output: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    super(message, options);
  }
}

export interface ProcessOutcome {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: Error;
}

/** Lines of pip's output kept in an error message. */
const OUTPUT_TAIL_LINES = 40;

/** The full argument list after the interpreter. */
export function pipArgv(step: PipInstallStep, targetDir: string, requirementsFile = step.requirementsFile): string[] {
  return ['-m', 'pip', 'install', '--target', targetDir, '-r', requirementsFile, ...step.args];
}

/** What a pip run that had nothing to install reports. */
const NOTHING_TO_INSTALL: ProcessOutcome = { status: 0, signal: null, stdout: '', stderr: '' };

/**
 * Prints, as a JSON list, the lines of a requirements file that the running Python does not already satisfy (not
 * installed, or at a version the specifier refuses). Lines it cannot judge (URLs, unparsable) count as needed.
 */
const MISSING_REQUIREMENTS_PY = `
import json, sys, importlib.metadata as md
try:
    from pip._vendor.packaging.requirements import Requirement
except Exception:
    Requirement = None
needed = []
for raw in open(sys.argv[1], encoding="utf-8"):
    line = raw.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
        continue
    missing = True
    if Requirement is not None:
        try:
            req = Requirement(line)
            if req.url is None and (req.marker is None or req.marker.evaluate()):
                missing = not req.specifier.contains(md.version(req.name), prereleases=True)
        except Exception:
            pass
    if missing:
        needed.append(line)
print(json.dumps(needed))
`;

/**
 * The requirements file pip should install from when requirements the bundling Python already satisfies are left
 * out: the original file when nothing can be left out (or it includes other files), a trimmed copy next to
 * `targetDir` otherwise, `undefined` when nothing is left to install.
 */
export function requirementsToInstall(step: PipInstallStep, targetDir: string): string | undefined {
  if (!step.omitInstalled) return step.requirementsFile;
  const text = fs.readFileSync(step.requirementsFile, 'utf8');
  // Options (-r, -c, -e, --index-url ...) may point at files relative to the original: keep it whole.
  if (/^\s*-/m.test(text)) return step.requirementsFile;
  const run = spawnSync(step.python, ['-c', MISSING_REQUIREMENTS_PY, step.requirementsFile], {
    cwd: step.cwd,
    encoding: 'utf8',
  });
  if (run.status !== 0) return step.requirementsFile;
  const needed = JSON.parse(run.stdout) as string[];
  if (needed.length === 0) return undefined;
  const trimmed = path.join(path.dirname(targetDir), `${path.basename(targetDir)}-requirements.txt`);
  fs.mkdirSync(path.dirname(trimmed), { recursive: true });
  fs.writeFileSync(trimmed, `${needed.join('\n')}\n`);
  return trimmed;
}

/** Environment for pip: no byte code written, no prompts, no version check. */
export function pipEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PIP_NO_INPUT: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
}

export function runPipSync(step: PipInstallStep, targetDir: string): ProcessOutcome {
  const requirements = requirementsToInstall(step, targetDir);
  if (requirements === undefined) return NOTHING_TO_INSTALL;
  const result = spawnSync(step.python, pipArgv(step, targetDir, requirements), {
    cwd: step.cwd,
    env: pipEnv(),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    ...(result.error ? { error: result.error } : {}),
  };
}

export function runPip(step: PipInstallStep, targetDir: string): Promise<ProcessOutcome> {
  const requirements = requirementsToInstall(step, targetDir);
  if (requirements === undefined) return Promise.resolve(NOTHING_TO_INSTALL);
  return new Promise((resolve) => {
    const child = spawn(step.python, pipArgv(step, targetDir, requirements), {
      cwd: step.cwd,
      env: pipEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let spawnError: Error | undefined;
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      spawnError = error;
    });
    child.on('close', (status, signal) => {
      resolve({
        status,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        ...(spawnError ? { error: spawnError } : {}),
      });
    });
  });
}

/** Throws the error that explains a failed pip run; returns quietly when pip succeeded. */
export function checkPipOutcome(step: PipInstallStep, outcome: ProcessOutcome): void {
  if (outcome.error) {
    const code = (outcome.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new BundlingError(
        `Python interpreter '${step.python}' was not found, so ${step.requirementsFile} cannot be installed`,
        {
          hint: 'install Python 3 or pass pythonExecutable (e.g. /usr/bin/python3)',
          cause: outcome.error,
        },
      );
    }
    throw new BundlingError(`could not run '${step.python} -m pip': ${outcome.error.message}`, {
      cause: outcome.error,
    });
  }
  if (outcome.status === 0) return;

  const output = tail(outcome.stderr.trim() ? outcome.stderr : outcome.stdout, OUTPUT_TAIL_LINES);
  if (/No module named pip/.test(outcome.stderr)) {
    throw new PipInstallError(
      `'${step.python}' has no pip, so ${step.requirementsFile} cannot be installed`,
      [],
      output,
      {
        hint: 'install pip for it (e.g. apt-get install python3-pip) or pass another pythonExecutable',
      },
    );
  }
  const requirements = blamedRequirements(step.requirementsFile, `${outcome.stdout}\n${outcome.stderr}`);
  const who =
    requirements.length > 0 ? `requirement ${requirements.map((r) => `'${r}'`).join(', ')}` : 'the requirements';
  const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.status}`;
  throw new PipInstallError(
    `pip could not install ${who} of ${step.requirementsFile} (pip ${how}):\n${indent(output)}`,
    requirements,
    output,
    { hint: pipHint(step, output) },
  );
}

/** The likeliest fix for a failed pip run, from what it printed. */
function pipHint(step: PipInstallStep, output: string): string {
  const platform = step.lambdaPlatform;
  if (platform && /No matching distribution found|Could not find a version that satisfies/.test(output)) {
    const tag = manylinuxTag(platform.architecture);
    return (
      `pip found no wheel for Python ${platform.pythonVersion} on ${tag} (the Lambda platform; pip cannot compile ` +
      `for it here): pin a version that publishes such a wheel (or a pure-Python one), point pip at a wheelhouse ` +
      `that has it (-c pip_args="--find-links DIR"), or build the worker in Docker`
    );
  }
  if (/invalid command 'bdist_wheel'/.test(output)) {
    return (
      `'${step.python}' cannot build wheels of source requirements (its setuptools needs the 'wheel' package): ` +
      'install it (e.g. apt-get install python3-wheel, or pip install wheel), or pass a pythonExecutable that has it'
    );
  }
  if (/install build dependencies|No matching distribution found for (setuptools|wheel|hatchling|flit)/.test(output)) {
    return 'pip could not fetch a build back-end: bundle without pipBuildIsolation so the bundling Python’s own setuptools is used';
  }
  return `check ${path.basename(step.requirementsFile)}; pip's output is above`;
}

/** The requirements of `requirementsFile` that pip's output mentions, in file order. */
export function blamedRequirements(requirementsFile: string, output: string): string[] {
  const haystack = output.toLowerCase().replace(/_/g, '-');
  return readRequirements(requirementsFile).filter((requirement) =>
    requirementKeys(requirement).some((key) => haystack.includes(key)),
  );
}

/** The requirement lines of a requirements file, without comments and options (an `-e` target counts). */
export function readRequirements(requirementsFile: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(requirementsFile, 'utf8');
  } catch {
    return [];
  }
  const requirements: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const editable = /^(-e|--editable)\s+(.+)$/.exec(line);
    if (editable) requirements.push(editable[2]!.trim());
    else if (!line.startsWith('-')) requirements.push(line);
  }
  return requirements;
}

function requirementKeys(requirement: string): string[] {
  const normalised = requirement.toLowerCase().replace(/_/g, '-');
  if (/^(\.|\/|~|file:)/.test(requirement) || requirement.includes('/')) {
    const base = path.basename(normalised.replace(/\/+$/, ''));
    return [normalised, base].filter((key) => key.length > 1);
  }
  const name = /^[a-z0-9][a-z0-9.-]*/.exec(normalised)?.[0];
  return name ? [name] : [];
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split(/\r?\n/);
  return (all.length > lines ? ['…', ...all.slice(-lines)] : all).join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}
