// Writes a zip whose bytes depend only on its entries: sorted names, one fixed timestamp, normalised unix modes.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { compareEntryNames } from './file-tree';

/** One file of a zip: its content comes from a file on disk or from memory. */
export interface ZipEntrySource {
  readonly entryName: string;
  readonly content: { readonly file: string } | { readonly data: Uint8Array };
  /** Stored as mode 0755 when true, 0644 otherwise (what Lambda needs, and nothing machine-specific). */
  readonly executable: boolean;
}

export interface WrittenZip {
  readonly zipPath: string;
  /** Entry names, sorted. */
  readonly files: string[];
  readonly bytes: number;
  /** Hex SHA-256 of the zip file. */
  readonly sha256: string;
}

/**
 * Every entry carries 1980-01-01 00:00, the earliest time a zip can hold. It is built from local-time fields, so it
 * encodes to the same DOS date whatever the machine's time zone.
 */
const FIXED_TIME = new Date(1980, 0, 1, 0, 0, 0);
/** "Version made by": zip 2.0 on Unix, so readers honour the unix mode in the external attributes. */
const MADE_BY_UNIX = (3 << 8) | 20;
const S_IFREG = 0o100000;

/** Writes `entries` to `zipPath` (its folder is created). Later entries with the same name replace earlier ones. */
export function writeDeterministicZip(zipPath: string, entries: readonly ZipEntrySource[]): WrittenZip {
  const byName = new Map<string, ZipEntrySource>();
  for (const entry of entries) byName.set(entry.entryName, entry);
  const names = [...byName.keys()].sort(compareEntryNames);

  const zip = new AdmZip();
  for (const name of names) {
    const entry = byName.get(name)!;
    const data = 'file' in entry.content ? fs.readFileSync(entry.content.file) : Buffer.from(entry.content.data);
    const added = zip.addFile(name, data, '', entry.executable ? 0o755 : 0o644);
    added.header.time = FIXED_TIME;
    added.header.made = MADE_BY_UNIX;
    added.header.attr = ((S_IFREG | (entry.executable ? 0o755 : 0o644)) << 16) >>> 0;
  }
  const buffer = zip.toBuffer();
  fs.mkdirSync(path.dirname(zipPath), { recursive: true });
  fs.writeFileSync(zipPath, buffer);
  return {
    zipPath,
    files: names,
    bytes: buffer.length,
    sha256: createHash('sha256').update(buffer).digest('hex'),
  };
}
