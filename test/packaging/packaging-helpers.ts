// Test helpers for worker packaging: scratch folders, fixture copies and running Python against a task root.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'packaging');

/** A fresh folder under the system temp dir, removed by {@link removeScratch}. */
export function makeScratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-packaging-test-'));
}

export function removeScratch(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A fresh scratch folder for each test of the calling `describe`, handed to `use` before the test, removed after. */
export function scratchOfEachTest(use: (dir: string) => void): void {
  let dir: string | undefined;
  beforeEach(() => {
    dir = makeScratch();
    use(dir);
  });
  afterEach(() => {
    if (dir) removeScratch(dir);
    dir = undefined;
  });
}

/** Copies the packaging fixtures into `scratch` (pip builds local packages in place; the repo must stay clean). */
export function copyFixtures(scratch: string): string {
  const dest = path.join(scratch, 'fixtures');
  fs.cpSync(FIXTURES, dest, { recursive: true });
  return dest;
}

export function writeFiles(root: string, files: Record<string, string>, modes: Record<string, number> = {}): void {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    fs.chmodSync(file, modes[name] ?? 0o644);
  }
}

/** Runs a Python snippet with `cwd` first on sys.path; returns its parsed JSON stdout, or throws with stderr. */
export function runPython(python: string, cwd: string, code: string, args: string[] = []): unknown {
  const result = spawnSync(python, ['-c', code, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: '' },
  });
  if (result.status !== 0) {
    throw new Error(`${python} failed (${String(result.status)}):\n${result.stderr}`);
  }
  return JSON.parse(result.stdout);
}

/** A Python preamble defining `context`, a fake Lambda context whose client_context.custom holds the grid's ids. */
export const FAKE_CONTEXT_PY = `
import json, sys
class _ClientContext:
    custom = {"session_id": "s-1", "task_id": "t-1", "attempt": 1}
    env = None
    client = None
class _Context:
    aws_request_id = "req-1"
    function_name = "function"
    client_context = _ClientContext()
    def get_remaining_time_in_millis(self):
        return 60000
context = _Context()
`;

/**
 * A Python whose pip can build local path packages offline (setuptools and wheel importable): `python3` when it has
 * both, else Debian's `/usr/bin/python3` (python3-pip, python3-wheel). Throws with the fix when neither can.
 */
export function wheelBuildingPython(): string {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(candidate, ['-c', 'import setuptools, wheel, pip'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  throw new Error(
    'no python3 with pip, setuptools and wheel: apt-get install python3-pip python3-wheel python3-setuptools',
  );
}

/** Writes a wheel of `fastcalc` 1.0 for `tag` whose `fastcalc/build.py` says which wheel it came from. */
export function writeWheel(dir: string, tag: string): void {
  const zip = new AdmZip();
  const files: Record<string, string> = {
    'fastcalc/__init__.py': 'from .build import TAG\n',
    'fastcalc/build.py': `TAG = ${JSON.stringify(tag)}\n`,
    'fastcalc-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: fastcalc\nVersion: 1.0\n',
    'fastcalc-1.0.dist-info/WHEEL': `Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: ${tag}\n`,
  };
  const record = [...Object.keys(files), 'fastcalc-1.0.dist-info/RECORD'].map((f) => `${f},,`).join('\n');
  for (const [name, content] of Object.entries({ ...files, 'fastcalc-1.0.dist-info/RECORD': `${record}\n` })) {
    zip.addFile(name, Buffer.from(content));
  }
  zip.writeZip(path.join(dir, `fastcalc-1.0-${tag}.whl`));
}
