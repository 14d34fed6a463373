// Counts the write-ahead-log pages each commit of the local grid writes (submit, claim, completion), by b-tree.
// Run: npm run build && node dist/bench/wal-pages.js [--warm-up 3000] [--rounds 50] [--batch 100]
//
// A fresh grid database in a temporary folder runs `--warm-up` single-task round trips first (as the latency bench's
// grid has, so the b-trees have their depth and the freelist its churn), then `--rounds` measured ones, then one
// session of `--batch` tasks (submitted, claimed and completed in batches of that size). The connection's automatic
// checkpoints are off while measuring, so the log only grows: each commit's frames are read from the `-wal` file
// (frame header: page number, then the database size in pages on a commit's last frame) and each page is named by
// what holds it after the commit: a b-tree (`dbstat`), page 1 (the header and `sqlite_schema`), a pointer-map page
// (`auto_vacuum`), or else the freelist.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openLocalBackends, type LocalBackends } from '../lib/backends/local';
import { newTask, type SessionRecord, type TaskRecord } from '../lib/core/task';
import type { Completion } from '../lib/ports';

const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

interface Args {
  warmUp: number;
  rounds: number;
  batch: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { warmUp: 3000, rounds: 50, batch: 100 };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = Number(argv[i + 1]);
    const key = { '--warm-up': 'warmUp', '--rounds': 'rounds', '--batch': 'batch' }[flag ?? ''] as
      keyof Args | undefined;
    if (key === undefined || !Number.isSafeInteger(value) || value < 0) {
      throw new Error(`unknown or invalid argument '${flag}' (use --warm-up N, --rounds N, --batch N)`);
    }
    args[key] = value;
    i += 1;
  }
  return args;
}

/** The grid's one round trip, as the client and agent write it: submit (sealed session), claim, completion. */
class Rounds {
  private sessions = 0;
  private readonly owner = `bench-host:${process.pid}:0a1b2c3d`;

  constructor(private readonly grid: LocalBackends) {}

  async submit(tasks: number): Promise<TaskRecord[]> {
    this.sessions += 1;
    const now = Date.now();
    const session: SessionRecord = {
      // The client's session ids are UUIDs: the same length here.
      sessionId: `00000000-0000-4000-8000-${String(this.sessions).padStart(12, '0')}`,
      createdAt: now,
      priority: 0,
      maxAttempts: 3,
      timeoutMs: 60_000,
      nonRetryableErrorTypes: [],
    };
    const records = Array.from({ length: tasks }, (_, i) => newTask(session, i, { inline: '{"x":1}' }, now));
    await this.grid.submissions.writeSubmission({
      sessionId: session.sessionId,
      session,
      tasks: records,
      seal: tasks,
    });
    return records;
  }

  async claim(max: number): Promise<TaskRecord[]> {
    return this.grid.intake.receiveAndClaim(max, {
      owner: this.owner,
      leaseMs: 30_000,
      busyDelayMs: 1_000,
      visibilityMs: 30_000,
      waitMs: 0,
    });
  }

  async complete(tasks: readonly TaskRecord[]): Promise<void> {
    const at = Date.now();
    const completions = tasks.map((task): Completion => ({
      taskId: task.taskId,
      guard: { owner: this.owner, attempt: task.attempt },
      outcome: { kind: 'succeeded', result: { inline: '{"ok":true}' } },
      at,
      run: { startedAt: at - 1, ms: 0.4 },
    }));
    const results = await this.grid.table.complete(completions);
    if (results.some((r) => r.status !== 'recorded')) throw new Error('a completion was not recorded');
  }
}

/** Reads the frames a commit appended to the log and names the page of each. */
class WalReader {
  private offset: number;
  private readonly walPath: string;
  private readonly pageSize: number;
  private readonly usable: number;

  constructor(private readonly grid: LocalBackends) {
    this.walPath = `${grid.dbPath}-wal`;
    this.pageSize = Number(grid.database.pragma('page_size', { simple: true }));
    this.usable = this.pageSize; // the grid never reserves bytes per page
    this.offset = this.end();
  }

  /** Pages written since the last call, each named by what holds it now. */
  take(): string[] {
    const end = this.end();
    const frameBytes = FRAME_HEADER_BYTES + this.pageSize;
    const fd = fs.openSync(this.walPath, 'r');
    const pages: number[] = [];
    try {
      const header = Buffer.alloc(FRAME_HEADER_BYTES);
      for (let at = this.offset; at + frameBytes <= end; at += frameBytes) {
        fs.readSync(fd, header, 0, FRAME_HEADER_BYTES, at);
        pages.push(header.readUInt32BE(0));
      }
    } finally {
      fs.closeSync(fd);
    }
    this.offset = end;
    const names = this.names();
    return pages.map((page) => names(page));
  }

  private end(): number {
    const size = fs.statSync(this.walPath).size;
    return Math.max(size, WAL_HEADER_BYTES);
  }

  private names(): (page: number) => string {
    const db = this.grid.database;
    const byPage = new Map<number, string>();
    for (const row of db.prepare('SELECT name, pageno, pagetype FROM dbstat').iterate() as Iterable<{
      name: string;
      pageno: number;
      pagetype: string;
    }>) {
      byPage.set(row.pageno, row.pagetype === 'overflow' ? `${row.name} (overflow)` : row.name);
    }
    const autoVacuum = Number(db.pragma('auto_vacuum', { simple: true })) !== 0;
    const mapSpan = Math.floor(this.usable / 5) + 1;
    return (page) => {
      if (page === 1) return 'page 1 (header, sqlite_schema)';
      if (autoVacuum && page === Math.floor((page - 2) / mapSpan) * mapSpan + 2) return 'pointer map';
      // In no b-tree, not page 1 nor a map page: a freelist trunk or leaf (the bundled SQLite has no sqlite_dbpage).
      return byPage.get(page) ?? 'freelist';
    };
  }
}

type Tally = Map<string, number>;

function add(tally: Tally, pages: readonly string[]): void {
  for (const name of pages) tally.set(name, (tally.get(name) ?? 0) + 1);
}

function total(tally: Tally): number {
  let n = 0;
  for (const count of tally.values()) n += count;
  return n;
}

function print(title: string, tallies: ReadonlyMap<string, Tally>, per: number): void {
  console.log(`\n${title}: log pages per commit (average of ${per})`);
  const names = new Set<string>();
  for (const tally of tallies.values()) for (const name of tally.keys()) names.add(name);
  const kinds = [...tallies.keys()];
  const width = Math.max(34, ...[...names].map((n) => n.length + 2));
  console.log(`${''.padEnd(width)}${kinds.map((k) => k.padStart(12)).join('')}`);
  for (const name of [...names].sort()) {
    const cells = kinds.map((k) => ((tallies.get(k)?.get(name) ?? 0) / per).toFixed(2).padStart(12));
    console.log(`${name.padEnd(width)}${cells.join('')}`);
  }
  const sums = kinds.map((k) => (total(tallies.get(k) ?? new Map()) / per).toFixed(2).padStart(12));
  console.log(`${'total'.padEnd(width)}${sums.join('')}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-wal-pages-'));
  const grid = openLocalBackends(dir);
  try {
    const rounds = new Rounds(grid);
    const started = Date.now();
    for (let i = 0; i < args.warmUp; i += 1) {
      await rounds.submit(1);
      await rounds.complete(await rounds.claim(1));
      if ((i + 1) % 1000 === 0) console.error(`warm-up: ${i + 1} of ${args.warmUp} round trips`);
    }
    // From here the log only grows, so every commit's frames stay in the file.
    grid.database.pragma('wal_checkpoint(TRUNCATE)');
    grid.database.pragma('wal_autocheckpoint = 0');
    const wal = new WalReader(grid);
    const single = new Map<string, Tally>([
      ['submit', new Map()],
      ['claim', new Map()],
      ['completion', new Map()],
    ]);
    for (let i = 0; i < args.rounds; i += 1) {
      await rounds.submit(1);
      add(single.get('submit')!, wal.take());
      const claimed = await rounds.claim(1);
      add(single.get('claim')!, wal.take());
      await rounds.complete(claimed);
      add(single.get('completion')!, wal.take());
    }
    print(`single-task round trips after ${args.warmUp} of warm-up`, single, args.rounds);
    let perRound = 0;
    for (const tally of single.values()) perRound += total(tally);
    console.log(`round trip: ${(perRound / Math.max(1, args.rounds)).toFixed(2)} log pages`);

    if (args.batch > 0) {
      const batch = new Map<string, Tally>([
        ['submit', new Map()],
        ['claim', new Map()],
        ['completion', new Map()],
      ]);
      await rounds.submit(args.batch);
      add(batch.get('submit')!, wal.take());
      const claimed = await rounds.claim(args.batch);
      add(batch.get('claim')!, wal.take());
      if (claimed.length !== args.batch) throw new Error(`claimed ${claimed.length} of ${args.batch} tasks`);
      await rounds.complete(claimed);
      add(batch.get('completion')!, wal.take());
      print(`one session of ${args.batch} tasks, each step one commit`, batch, 1);
      let pages = 0;
      for (const tally of batch.values()) pages += total(tally);
      console.log(`per task: ${(pages / args.batch).toFixed(2)} log pages`);
    }
    const freelist = Number(grid.database.pragma('freelist_count', { simple: true }));
    const pagesInFile = Number(grid.database.pragma('page_count', { simple: true }));
    console.log(`\ndatabase: ${pagesInFile} pages, ${freelist} free; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await grid.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
