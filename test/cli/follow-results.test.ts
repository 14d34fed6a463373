// Following a session into a results file that fails to be written ends with an error naming the file and how to
// read the results again, never an unhandled stream error that kills the process.
import fs from 'node:fs';
import path from 'node:path';
import { runBatch } from '../../lib/cli/commands/run';
import { checkResultsFile, followResults } from '../../lib/cli/follow-results';
import { compileConfig } from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/local-grid';
import { FIXTURES, tempDir } from '../support/local-grid';

describe('followResults into a file that cannot be written', () => {
  let grid: EmbeddedGrid;
  let dir: string;
  beforeEach(async () => {
    dir = tempDir();
    grid = await startEmbeddedGrid({ dataDir: path.join(dir, 'grid'), config: compileConfig({}) });
  });
  afterEach(async () => {
    await grid.close(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('rejects naming the file and `htcgrid results <session>`, and the session keeps its results', async () => {
    const handle = await grid.client.submit([{ a: 1 }, { a: 2 }]);
    await handle.cancel();
    const out = path.join(dir, 'gone', 'results.jsonl');
    const readAgain = `htcgrid results ${handle.sessionId} --dir ${dir}`;

    const followed = followResults(handle, { out, showProgress: false, readAgain });

    await expect(followed).rejects.toThrow(
      new RegExp(`could not write the results file ${out}: ENOENT[^]*read them again with ${readAgain}`),
    );
    expect((await handle.status()).counts.cancelled).toBe(2);
  });

  it('without a way to read them again, says the results were not kept instead of naming a command', async () => {
    const handle = await grid.client.submit([{ a: 1 }]);
    await handle.cancel();
    const out = path.join(dir, 'gone', 'results.jsonl');

    const error = await followResults(handle, { out, showProgress: false }).catch((err: Error) => err);

    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/results were not kept .*temporary.*--out .*--keep/);
    expect((error as Error).message).not.toMatch(/keeps its results|htcgrid results/);
  });
});

describe('htcgrid run whose results file cannot be written', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const batch = (keep: boolean) =>
    runBatch({
      worker: path.join(FIXTURES, 'http', 'worker'),
      config: compileConfig({ slots: 1 }),
      events: [{ do: 'noop' }],
      out: path.join(dir, 'gone', 'results.jsonl'),
      progress: false,
      keep,
    }).catch((err: Error) => err);

  it('on a temporary grid folder, does not send the user to a session it deletes', async () => {
    const error = await batch(false);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/results were not kept/);
    expect((error as Error).message).not.toMatch(/htcgrid results/);
  });

  it('with --keep, names the kept grid folder in the command that reads the results again', async () => {
    const error = await batch(true);
    expect((error as Error).message).toMatch(/read them again with htcgrid results \S+ --dir \S+htcgrid-run-/);
    const kept = /--dir (\S+)/.exec((error as Error).message)![1]!;
    expect(fs.existsSync(kept)).toBe(true);
    fs.rmSync(kept, { recursive: true, force: true });
  });
});

describe('checking a results file before a run', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a missing folder: says so and to create it', () => {
    expect(() => checkResultsFile(path.join(dir, 'gone', 'r.jsonl'))).toThrow(
      /folder \S+gone does not exist \(create it, or choose another --out\)/,
    );
  });

  it('a path through a file: says a part of it is a file, and never to create what exists', () => {
    fs.writeFileSync(path.join(dir, 'file'), '');
    const check = () => checkResultsFile(path.join(dir, 'file', 'sub', 'r.jsonl'));
    expect(check).toThrow(/\S+sub is not a folder \(a part of that path is a file\): choose another --out/);
    expect(check).not.toThrow(/create it/);
  });

  it('a folder that exists but cannot be written: says to make it writable, never to create it', () => {
    // Tests run as root here, which may write anywhere: the refusal is the one fs.accessSync gives other users.
    jest.spyOn(fs, 'accessSync').mockImplementation(() => {
      throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
    });
    const check = () => checkResultsFile(path.join(dir, 'r.jsonl'));
    expect(check).toThrow(/is not writable \(EACCES\): make it writable, or choose another --out/);
    expect(check).not.toThrow(/create it/);
  });
});
