// One twin per machine: a second waits for the first to release the lock; a dead twin's lock is taken over.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireTwinLock } from '../../twin/host-lock';
import { waitFor } from '../support/emulators';

let dir: string;
beforeEach(() => {
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-lock-test-')), 'twin.lock');
});
afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

describe('the twin lock', () => {
  it('makes a second twin wait, saying for whom, until the first releases', async () => {
    const releaseFirst = await acquireTwinLock(() => undefined, dir);
    const said: string[] = [];
    let second: (() => void) | undefined;
    const waiting = acquireTwinLock((line) => said.push(line), dir).then((r) => (second = r));
    await waitFor('the second twin to say it waits', async () => said.length > 0, 10_000);
    expect(said).toEqual([`waiting for another deployment twin (pid ${process.pid}) to finish: one twin per machine`]);
    expect(second).toBeUndefined();
    releaseFirst();
    await waiting;
    expect(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8')).toBe(String(process.pid));
    second!();
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('takes over the lock of a twin that died without releasing it', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'owner.pid'), String(dead));
    const said: string[] = [];
    const release = await acquireTwinLock((line) => said.push(line), dir);
    expect(said).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8')).toBe(String(process.pid));
    release();
  });
});
