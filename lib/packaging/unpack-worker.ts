// Unpacks a Lambda zip into a task root, keeping execute bits and refusing entries that would land outside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { BundlingError } from '../core';

/** A zip entry would be written outside the folder it is unpacked into (a "zip slip"), or is otherwise unsafe. */
export class UnsafeZipEntryError extends BundlingError {
  constructor(
    readonly zipPath: string,
    readonly entryName: string,
    problem: string,
  ) {
    super(`worker zip '${zipPath}' is unsafe: entry '${entryName}' ${problem}; nothing was unpacked`, {
      hint: 'rebuild the zip with entry names relative to its root (htcgrid bundle does this)',
    });
  }
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;
const UNIX_HOST = 3;

interface PlannedEntry {
  readonly relative: string;
  readonly kind: 'file' | 'dir' | 'symlink';
  readonly executable: boolean;
  readonly entry: AdmZip.IZipEntry;
}

/**
 * Unpacks `zipPath` into `destDir` (created if missing). Files get mode 0755 when the zip marks any execute bit,
 * else 0644; symbolic links are kept when they point inside `destDir`. Entry names and link targets are all checked
 * before anything is written, so such an unsafe zip leaves `destDir` untouched. Links are created last, and no entry may sit below a link,
 * so nothing is ever written through a link the zip brought.
 */
export async function unpackWorker(zipPath: string, destDir: string): Promise<void> {
  const zip = openZip(zipPath);
  const root = path.resolve(destDir);
  const planned = zip.getEntries().map((entry) => planEntry(zipPath, root, entry));
  assertNothingBelowLinks(zipPath, planned);
  const order: Record<PlannedEntry['kind'], number> = { dir: 0, file: 1, symlink: 2 };
  planned.sort((a, b) => order[a.kind] - order[b.kind]);

  await fs.promises.mkdir(root, { recursive: true });
  const realRoot = await fs.promises.realpath(root);
  for (const item of planned) {
    const target = path.join(root, item.relative);
    await assertResolvesInside(zipPath, item, realRoot, path.dirname(target));
    if (item.kind === 'dir') {
      await fs.promises.mkdir(target, { recursive: true });
      continue;
    }
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    await fs.promises.rm(target, { force: true });
    if (item.kind === 'symlink') {
      await fs.promises.symlink(item.entry.getData().toString('utf8'), target);
    } else {
      await fs.promises.writeFile(target, readEntry(zipPath, item.entry), { mode: item.executable ? 0o755 : 0o644 });
      await fs.promises.chmod(target, item.executable ? 0o755 : 0o644); // writeFile's mode passes through the umask
    }
  }
}

/** Refuses a zip with an entry inside a folder that the zip also makes a symbolic link. */
function assertNothingBelowLinks(zipPath: string, planned: readonly PlannedEntry[]): void {
  const links = new Set(planned.filter((item) => item.kind === 'symlink').map((item) => item.relative));
  if (links.size === 0) return;
  for (const item of planned) {
    const parts = item.relative.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (links.has(parent)) {
        throw new UnsafeZipEntryError(
          zipPath,
          item.entry.entryName,
          `lies below '${parent}', which the zip makes a symbolic link`,
        );
      }
    }
  }
}

/** Guards against links already in the destination: the nearest existing ancestor must really be inside the root. */
async function assertResolvesInside(zipPath: string, item: PlannedEntry, realRoot: string, dir: string): Promise<void> {
  let existing = dir;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  const real = await fs.promises.realpath(existing);
  if (!isInside(realRoot, real)) {
    throw new UnsafeZipEntryError(zipPath, item.entry.entryName, `would be written through a link to '${real}'`);
  }
}

function openZip(zipPath: string): AdmZip {
  if (!fs.existsSync(zipPath)) {
    throw new BundlingError(`worker zip '${zipPath}' does not exist`);
  }
  try {
    return new AdmZip(zipPath);
  } catch (error) {
    throw new BundlingError(`'${zipPath}' is not a readable zip: ${(error as Error).message}`, { cause: error });
  }
}

function readEntry(zipPath: string, entry: AdmZip.IZipEntry): Buffer {
  try {
    return entry.getData();
  } catch (error) {
    throw new BundlingError(`worker zip '${zipPath}' is corrupt at entry '${entry.entryName}': ${String(error)}`, {
      cause: error,
    });
  }
}

function planEntry(zipPath: string, root: string, entry: AdmZip.IZipEntry): PlannedEntry {
  const name = entry.entryName;
  const relative = safeRelativePath(zipPath, name);
  const unixMode = entry.header.made >> 8 === UNIX_HOST ? (entry.header.attr >>> 16) & 0xffff : 0;
  const type = unixMode & S_IFMT;
  if (entry.isDirectory || type === S_IFDIR) return { relative, kind: 'dir', executable: false, entry };
  if (type === S_IFLNK) {
    const linkTarget = entry.getData().toString('utf8');
    const resolved = path.resolve(path.dirname(path.join(root, relative)), linkTarget);
    if (path.isAbsolute(linkTarget) || !isInside(root, resolved)) {
      throw new UnsafeZipEntryError(zipPath, name, `is a symbolic link to '${linkTarget}', outside the task root`);
    }
    return { relative, kind: 'symlink', executable: false, entry };
  }
  return { relative, kind: 'file', executable: (unixMode & 0o111) !== 0, entry };
}

/** The entry's path relative to the unpack root, or an error when it is absolute or climbs out with `..`. */
function safeRelativePath(zipPath: string, name: string): string {
  if (name.includes('\0')) throw new UnsafeZipEntryError(zipPath, name, 'has a NUL character in its name');
  const slashed = name.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[A-Za-z]:/.test(slashed)) {
    throw new UnsafeZipEntryError(zipPath, name, 'has an absolute path');
  }
  const normalised = path.posix.normalize(slashed);
  if (normalised === '..' || normalised.startsWith('../')) {
    throw new UnsafeZipEntryError(zipPath, name, 'climbs out of the task root with ".."');
  }
  const relative = normalised.replace(/\/+$/, '');
  if (relative === '' || relative === '.') throw new UnsafeZipEntryError(zipPath, name, 'names the root itself');
  return relative;
}

function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
