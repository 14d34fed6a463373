// Walks a worker folder into the list of files that go into its zip, leaving out caches, VCS folders and venvs.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What to leave out of a copied folder. Names match one path segment exactly; suffixes match the end of a name. */
export interface ExcludeRules {
  /** Folder or file names left out wherever they occur (e.g. `__pycache__`, `.git`). */
  readonly names: readonly string[];
  /** Names left out when they sit directly in the folder's root (e.g. `tests`). */
  readonly rootNames: readonly string[];
  /** File name endings left out (e.g. `.pyc`). */
  readonly suffixes: readonly string[];
  /** Leave out any folder holding a `pyvenv.cfg` (a Python virtual environment, whatever its name). */
  readonly virtualEnvs: boolean;
}

/** One file found in a folder, addressed by its zip entry name (forward slashes, relative to the folder). */
export interface TreeFile {
  readonly entryName: string;
  readonly absolutePath: string;
  /** True when any execute bit is set on the file. */
  readonly executable: boolean;
}

const VCS_AND_EDITOR = ['.git', '.hg', '.svn', '.DS_Store', '.idea', '.vscode'];

/** Folders and files a Python worker's zip never needs. */
export const PYTHON_EXCLUDES: ExcludeRules = {
  names: [
    ...VCS_AND_EDITOR,
    '__pycache__',
    'node_modules',
    '.venv',
    'venv',
    '.pytest_cache',
    '.mypy_cache',
    '.ruff_cache',
    '.tox',
  ],
  rootNames: ['tests'],
  suffixes: ['.pyc', '.pyo'],
  virtualEnvs: true,
};

/** A `provided` worker may ship anything; only VCS and editor litter is left out. */
export const PROVIDED_EXCLUDES: ExcludeRules = {
  names: VCS_AND_EDITOR,
  rootNames: [],
  suffixes: [],
  virtualEnvs: false,
};

/** What pip leaves in a `--target` folder that the zip does without: byte code, and `direct_url.json`, which records the build machine's path. */
export const PIP_TARGET_EXCLUDES: ExcludeRules = {
  names: ['__pycache__', 'direct_url.json'],
  rootNames: [],
  suffixes: ['.pyc', '.pyo'],
  virtualEnvs: false,
};

/**
 * Lists the files under `root` that pass `rules`, sorted by entry name. Symbolic links are followed (their target's
 * content goes into the zip); a link that loops back into a folder already being walked is skipped.
 */
export function listTree(root: string, rules: ExcludeRules, skip: ReadonlySet<string> = new Set()): TreeFile[] {
  const files: TreeFile[] = [];
  const walk = (dir: string, prefix: string, ancestors: ReadonlySet<string>): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      if (isExcluded(name, prefix === '', rules)) continue;
      const absolutePath = path.join(dir, name);
      if (skip.has(absolutePath)) continue;
      let stat: fs.Stats;
      try {
        stat = fs.statSync(absolutePath);
      } catch {
        continue; // a dangling symbolic link has nothing to pack
      }
      const entryName = prefix + name;
      if (stat.isDirectory()) {
        const real = fs.realpathSync(absolutePath);
        if (ancestors.has(real)) continue;
        if (rules.virtualEnvs && fs.existsSync(path.join(absolutePath, 'pyvenv.cfg'))) continue;
        walk(absolutePath, `${entryName}/`, new Set([...ancestors, real]));
      } else if (stat.isFile()) {
        files.push({ entryName, absolutePath, executable: (stat.mode & 0o111) !== 0 });
      }
    }
  };
  walk(root, '', new Set([fs.realpathSync(root)]));
  return files.sort((a, b) => compareEntryNames(a.entryName, b.entryName));
}

/** Orders entry names by code point, independent of locale. */
export function compareEntryNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isExcluded(name: string, atRoot: boolean, rules: ExcludeRules): boolean {
  if (rules.names.includes(name)) return true;
  if (atRoot && rules.rootNames.includes(name)) return true;
  return rules.suffixes.some((suffix) => name.endsWith(suffix));
}
