// Runs the PayloadStore contract against the file store, plus its key checks.
import fs from 'node:fs';
import path from 'node:path';
import { FilePayloadStore } from '../../../lib/backends/local';
import { describePayloadStoreContract } from '../../contract/payload-store.contract';
import { makeTempDir } from './temp-grid-dir';

describePayloadStoreContract('FilePayloadStore', async () => {
  const temp = makeTempDir();
  return { store: new FilePayloadStore(temp.dir), cleanup: async () => temp.remove() };
});

describe('FilePayloadStore', () => {
  it.each([
    ['../outside.json', /contains '\.\.'/],
    ['sessions/../../outside.json', /contains '\.\.'/],
    ['/etc/passwd', /absolute path/],
    ['', /empty/],
    ['a\\b', /backslash/],
    ['a//b', /empty or '\.' path segment/],
  ])('rejects the key %j with a clear error', async (key, problem) => {
    const temp = makeTempDir();
    const store = new FilePayloadStore(temp.dir);
    try {
      await expect(store.put(key, 'x')).rejects.toThrow(problem);
      await expect(store.get(key)).rejects.toThrow(/invalid payload key/);
    } finally {
      temp.remove();
    }
  });

  it('stores a key as a file under its root and leaves no temporary file behind', async () => {
    const temp = makeTempDir();
    const store = new FilePayloadStore(temp.dir);
    try {
      await store.put('sessions/s1/t1/input.json', '{"x":1}');

      expect(fs.readFileSync(path.join(temp.dir, 'sessions', 's1', 't1', 'input.json'), 'utf8')).toBe('{"x":1}');
      expect(fs.readdirSync(path.join(temp.dir, 'sessions', 's1', 't1'))).toEqual(['input.json']);
    } finally {
      temp.remove();
    }
  });
});
