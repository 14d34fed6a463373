// What the tests of the local (SQLite) backends share: backends on a fresh grid folder for the length of one test.
import { openLocalBackends, type LocalBackends } from '../../lib/backends/local';
import { makeTempDir } from '../backends/local/temp-grid-dir';

/**
 * Runs `test` on local backends opened on a fresh folder (`dir`), then closes them and removes the folder, whether
 * `test` passed or threw.
 */
export async function onLocalBackends<T>(test: (backends: LocalBackends, dir: string) => Promise<T>): Promise<T> {
  const temp = makeTempDir();
  const backends = openLocalBackends(temp.dir);
  try {
    return await test(backends, temp.dir);
  } finally {
    await backends.close();
    temp.remove();
  }
}
