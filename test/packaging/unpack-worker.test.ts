// Tests unpacking worker zips into task roots: modes and symbolic links kept, unsafe entries refused, task roots prepared.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BundlingError } from '../../lib/core';
import { bundleWorker, prepareTaskRoot, UnsafeZipEntryError, unpackWorker } from '../../lib/packaging';
import { REPO_ROOT, scratchOfEachTest } from './packaging-helpers';

/** Writes a zip with Python's zipfile, which stores entry names exactly as given (as a hostile zip would). */
function writeZipWithPython(zipPath: string, entries: Array<{ name: string; data: string; mode?: number }>): void {
  const script = `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for e in json.loads(sys.argv[2]):
        info = zipfile.ZipInfo(e["name"])
        info.create_system = 3
        info.external_attr = e.get("mode", 0o100644) << 16
        z.writestr(info, e["data"])
`;
  const result = spawnSync('python3', ['-c', script, zipPath, JSON.stringify(entries)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(result.stderr);
}

describe('unpackWorker', () => {
  let scratch: string;
  scratchOfEachTest((dir) => (scratch = dir));

  it.each([
    ['../evil.txt', /climbs out of the task root/],
    ['sub/../../evil.txt', /climbs out of the task root/],
    ['/tmp/evil.txt', /absolute path/],
    ['..\\evil.txt', /climbs out of the task root/],
  ])('refuses an entry named %s and unpacks nothing', async (name, problem) => {
    const zipPath = path.join(scratch, 'evil.zip');
    const dest = path.join(scratch, 'a', 'task');
    writeZipWithPython(zipPath, [
      { name: 'ok.py', data: 'X = 1\n' },
      { name, data: 'pwned' },
    ]);

    const error = await unpackWorker(zipPath, dest).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnsafeZipEntryError);
    expect((error as Error).message).toMatch(problem);
    expect(fs.existsSync(path.join(dest, 'ok.py'))).toBe(false);
    expect(fs.existsSync(path.join(scratch, 'a', 'evil.txt'))).toBe(false);
  });

  it('refuses a symbolic link that points outside the task root', async () => {
    const zipPath = path.join(scratch, 'link.zip');
    writeZipWithPython(zipPath, [{ name: 'escape', data: '../../etc/passwd', mode: 0o120777 }]);

    await expect(unpackWorker(zipPath, path.join(scratch, 'task'))).rejects.toThrow(
      /symbolic link to '..\/..\/etc\/passwd'/,
    );
  });

  it('refuses an entry that would be written through a symbolic link the zip brings', async () => {
    const zipPath = path.join(scratch, 'chain.zip');
    const dest = path.join(scratch, 'a', 'task');
    writeZipWithPython(zipPath, [
      { name: 'b', data: '.', mode: 0o120777 },
      { name: 'a', data: 'b/..', mode: 0o120777 },
      { name: 'a/evil.txt', data: 'pwned' },
    ]);

    await expect(unpackWorker(zipPath, dest)).rejects.toThrow(
      /'a\/evil.txt' lies below 'a', which the zip makes a symbolic link/,
    );
    expect(fs.existsSync(path.join(scratch, 'a', 'evil.txt'))).toBe(false);
  });

  it('refuses to write through a link that already sits in the destination', async () => {
    const zipPath = path.join(scratch, 'plain.zip');
    const dest = path.join(scratch, 'task');
    fs.mkdirSync(dest);
    fs.mkdirSync(path.join(scratch, 'outside'));
    fs.symlinkSync(path.join(scratch, 'outside'), path.join(dest, 'lib'));
    writeZipWithPython(zipPath, [{ name: 'lib/evil.txt', data: 'pwned' }]);

    await expect(unpackWorker(zipPath, dest)).rejects.toThrow(/would be written through a link/);
    expect(fs.readdirSync(path.join(scratch, 'outside'))).toEqual([]);
  });

  it('keeps a symbolic link that points inside the task root, and the execute bits of files', async () => {
    const zipPath = path.join(scratch, 'ok.zip');
    const dest = path.join(scratch, 'task');
    writeZipWithPython(zipPath, [
      { name: 'lib/libfoo.so.1', data: 'ELF', mode: 0o100755 },
      { name: 'lib/libfoo.so', data: 'libfoo.so.1', mode: 0o120777 },
      { name: 'notes.txt', data: 'n', mode: 0o100600 },
    ]);

    await unpackWorker(zipPath, dest);

    expect(fs.readlinkSync(path.join(dest, 'lib/libfoo.so'))).toBe('libfoo.so.1');
    expect(fs.readFileSync(path.join(dest, 'lib/libfoo.so'), 'utf8')).toBe('ELF');
    expect(fs.statSync(path.join(dest, 'lib/libfoo.so.1')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(dest, 'notes.txt')).mode & 0o777).toBe(0o644);
  });

  it('fails with a BundlingError when the file is not a zip', async () => {
    const notZip = path.join(scratch, 'not.zip');
    fs.writeFileSync(notZip, 'this is not a zip');

    await expect(unpackWorker(notZip, path.join(scratch, 'task'))).rejects.toThrow(BundlingError);
    await expect(unpackWorker(path.join(scratch, 'missing.zip'), path.join(scratch, 'task'))).rejects.toThrow(
      /does not exist/,
    );
  });
});

describe('prepareTaskRoot', () => {
  let scratch: string;
  scratchOfEachTest((dir) => (scratch = dir));

  it('bundles a worker folder to <workDir>/worker.zip and runs from its unpacked copy in <workDir>/task', async () => {
    const workDir = path.join(scratch, 'work');
    fs.mkdirSync(path.join(workDir, 'task'), { recursive: true });
    fs.writeFileSync(path.join(workDir, 'task', 'stale.py'), 'left from an earlier run');

    const prepared = await prepareTaskRoot(path.join(REPO_ROOT, 'workers', 'python', 'mock-compute'), workDir);

    expect(prepared).toEqual({
      taskRoot: path.join(workDir, 'task'),
      zipPath: path.join(workDir, 'worker.zip'),
      runtime: 'python',
    });
    expect(fs.readdirSync(prepared.taskRoot).sort()).toEqual(['README.md', 'mock_compute_engine.py']);
    expect(fs.existsSync(prepared.zipPath)).toBe(true);
  });

  it('unpacks a given zip as it is and detects its runtime from the unpacked files', async () => {
    const zip = await bundleWorker({
      sourceDir: path.join(REPO_ROOT, 'workers', 'typescript', 'pi-estimator'),
      outFile: path.join(scratch, 'pi.zip'),
    });

    const prepared = await prepareTaskRoot(zip.zipPath, path.join(scratch, 'work'));

    expect(prepared.runtime).toBe('node');
    expect(prepared.zipPath).toBe(zip.zipPath);
    expect(fs.readdirSync(prepared.taskRoot)).toEqual(['index.js']);
  });

  it('fails with a BundlingError when the worker does not exist', async () => {
    await expect(prepareTaskRoot(path.join(scratch, 'nothing-here'), path.join(scratch, 'work'))).rejects.toThrow(
      /worker '.*nothing-here' does not exist/,
    );
  });
});
