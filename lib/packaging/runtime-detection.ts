// Tells which Lambda runtime family a worker folder (or an unpacked worker zip) is written for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BundlingError, type RuntimeFamily } from '../core';

/** Root files that are tooling, not handlers, in a Node worker folder. */
const NODE_NON_HANDLER = /(\.d\.ts|\.(test|spec|config)\.[cm]?[jt]s)$/;
const NODE_HANDLER = /\.([cm]?js|ts)$/;

/** Why a folder looks like each runtime: the files that gave it away. */
export type RuntimeEvidence = Record<RuntimeFamily, string[]>;

/** Collects the files at the root of `dir` that point at each runtime family. */
export function runtimeEvidence(dir: string): RuntimeEvidence {
  const evidence: RuntimeEvidence = { python: [], node: [], provided: [] };
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const name = entry.name;
    const full = path.join(dir, name);
    if (!isFile(full)) continue;
    if (name.endsWith('.py') || name === 'requirements.txt') evidence.python.push(name);
    else if (name === 'package.json' || (NODE_HANDLER.test(name) && !NODE_NON_HANDLER.test(name)))
      evidence.node.push(name);
    else if (name === 'bootstrap' && isExecutable(full)) evidence.provided.push(name);
  }
  return evidence;
}

/**
 * Detects the runtime family of a worker folder from the files at its root:
 * `python` for `*.py` or `requirements.txt`, `node` for `package.json` or a `*.ts`/`*.js` handler, `provided` for an
 * executable `bootstrap`. Throws a {@link BundlingError} when the folder is missing, empty of all of these, or shows
 * more than one family.
 */
export function detectWorkerRuntime(dir: string): RuntimeFamily {
  assertWorkerFolder(dir);
  const evidence = runtimeEvidence(dir);
  const found = (Object.keys(evidence) as RuntimeFamily[]).filter((family) => evidence[family].length > 0);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) {
    const bootstrap = path.join(dir, 'bootstrap');
    if (isFile(bootstrap)) {
      throw new BundlingError(`worker folder '${dir}' has a \`bootstrap\` that is not executable`, {
        hint: `make it executable (chmod +x ${bootstrap}) or name the runtime explicitly (runtime: 'provided')`,
      });
    }
    throw new BundlingError(`cannot tell the runtime of worker folder '${dir}': it holds no handler`, {
      hint: 'put a Python handler (*.py, requirements.txt), a Node handler (*.ts, *.js, package.json) or an executable `bootstrap` at its root',
    });
  }
  const seen = found.map((family) => `${family} (${evidence[family].join(', ')})`).join(' and ');
  throw new BundlingError(`cannot tell the runtime of worker folder '${dir}': it looks like ${seen}`, {
    hint: `name the runtime explicitly (runtime: ${found.map((f) => `'${f}'`).join(' or ')}), or remove the other files`,
  });
}

/** Throws a {@link BundlingError} unless `dir` is an existing folder. */
export function assertWorkerFolder(dir: string): void {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new BundlingError(`worker folder '${dir}' does not exist or is not a folder`, {
      hint: 'pass the folder holding the handler module (e.g. workers/python/mock-compute)',
    });
  }
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return (fs.statSync(file).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
