// The local grid's payload store: one file per key under a directory, written atomically (temp file + rename).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PayloadStore } from '../../ports';
import { DiskFullError, InvalidPayloadKeyError, PayloadNotFoundError } from './errors';

/**
 * `PayloadStore` on the file system. Keys are relative paths of `/`-separated names (`sessions/s1/t1/input.json`);
 * a key that could leave the directory is rejected with `InvalidPayloadKeyError`. A reader never sees a half
 * written file: writes go to a temporary file in the same directory and are renamed over the key.
 */
export class FilePayloadStore implements PayloadStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async put(key: string, data: string | Buffer): Promise<void> {
    const file = this.fileOf(key);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fs.writeFile(temp, data);
      await fs.rename(temp, file);
    } catch (error) {
      await fs.rm(temp, { force: true });
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC')
        throw new DiskFullError(`writing payload '${key}'`, { cause: error });
      throw error;
    }
  }

  async get(key: string): Promise<Buffer> {
    const file = this.fileOf(key);
    try {
      return await fs.readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR')
        throw new PayloadNotFoundError(key, { cause: error });
      throw error;
    }
  }

  /** Deleting a key that does not exist is not an error (as in S3). */
  async delete(keys: readonly string[]): Promise<void> {
    const files = keys.map((key) => this.fileOf(key));
    await Promise.all(files.map((file) => fs.rm(file, { force: true })));
  }

  /** Removes the folder of a prefix ending in '/' (a session's files, including those of earlier attempts). */
  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix.endsWith('/')) throw new InvalidPayloadKeyError(prefix, "a prefix must end with '/'");
    await fs.rm(this.fileOf(prefix.slice(0, -1)), { recursive: true, force: true });
  }

  async close(): Promise<void> {}

  /** Checks a key and maps it to its file; the checks are lexical, so they hold before the file exists. */
  private fileOf(key: string): string {
    if (key.length === 0) throw new InvalidPayloadKeyError(key, 'it is empty');
    if (key.includes('\\')) throw new InvalidPayloadKeyError(key, 'it contains a backslash');
    if (key.includes('\0')) throw new InvalidPayloadKeyError(key, 'it contains a NUL character');
    if (key.startsWith('/') || path.isAbsolute(key)) throw new InvalidPayloadKeyError(key, 'it is an absolute path');
    const parts = key.split('/');
    if (parts.some((part) => part === '..')) throw new InvalidPayloadKeyError(key, "it contains '..'");
    if (parts.some((part) => part === '.' || part === '')) {
      throw new InvalidPayloadKeyError(key, "it has an empty or '.' path segment");
    }
    if (parts.some((part) => part.endsWith('.tmp') && /\.\d+\.[0-9a-f]{12}\.tmp$/.test(part))) {
      throw new InvalidPayloadKeyError(key, 'it names a temporary file of the store');
    }
    return path.join(this.root, ...parts);
  }
}
