// A submission that fails part-way leaves nothing behind: no session and no stored payload.
import fs from 'node:fs';
import path from 'node:path';
import { PAYLOADS_DIR, openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { GridClient } from '../../lib/client';
import { InvalidTaskError, compileConfig } from '../../lib/core';
import { makeTempDir } from '../backends/local/temp-grid-dir';

describe('GridClient.submit rollback', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let backends: LocalBackends;
  beforeEach(() => {
    temp = makeTempDir();
    backends = openLocalBackends(temp.dir);
  });
  afterEach(async () => {
    await backends.close();
    temp.remove();
  });

  const payloadFiles = (): string[] =>
    (fs.readdirSync(path.join(temp.dir, PAYLOADS_DIR), { recursive: true }) as string[]).filter((f) =>
      fs.statSync(path.join(temp.dir, PAYLOADS_DIR, f)).isFile(),
    );

  it('deletes the payloads it already stored when a later event is invalid', async () => {
    // Every event goes to the payload store (no inline payloads), so the first two are stored before the third fails.
    const client = new GridClient({ config: compileConfig({ inline_payload_max_bytes: 0 }, 'test'), ...backends });
    const stored = await client.submit([{ n: 0 }]);
    const afterValid = payloadFiles();

    const failed = client.submit([{ n: 1 }, { n: 2 }, { n: 3, bad: 1n }], { batchSize: 1 });

    await expect(failed).rejects.toThrow(InvalidTaskError);
    expect(afterValid).toHaveLength(1);
    expect(payloadFiles()).toEqual(afterValid);
    expect((await backends.table.countByState(stored.sessionId)).pending).toBe(1);
  });
});
