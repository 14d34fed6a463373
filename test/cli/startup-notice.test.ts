// What the CLI says while a grid starts: a warning for slots far beyond the CPUs, and progress while it starts.
import { spawnSync } from 'node:child_process';
import { pythonVersionNote, slotsWarning, withStartupProgress } from '../../lib/cli/startup-notice';
import { waitFor } from '../support/local-grid';

describe('start-up notices', () => {
  it('warns when the slots are more than four times the CPUs, naming both and a better setting', () => {
    expect(slotsWarning(8, 2)).toBeUndefined();
    expect(slotsWarning(1000, 2)).toMatch(/^warning: 1000 slots on 2 CPU\(s\): .* --slots 2 suits CPU-bound tasks$/);
  });

  it('prints a line with the time spent until the start-up settles, then nothing more', async () => {
    const lines: string[] = [];
    const error = jest.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line));
    try {
      let finish!: (value: string) => void;
      const starting = withStartupProgress('starting 1000 runtime(s)', new Promise<string>((r) => (finish = r)), 10);
      await waitFor(() => lines.length >= 2, 10_000, 'two progress lines');
      finish('grid');
      await expect(starting).resolves.toBe('grid');
      const seen = lines.length;
      await new Promise((r) => setTimeout(r, 50));
      expect(lines.length).toBe(seen);
      expect(lines[0]).toMatch(/^starting 1000 runtime\(s\) \(\d+ s\)$/);
    } finally {
      error.mockRestore();
    }
  });

  it("names the Python that actually runs, and warns when it is not the Lambda runtime's version", () => {
    const version = spawnSync('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
      encoding: 'utf8',
    }).stdout.trim();
    const same = pythonVersionNote({ pythonExecutable: 'python3', runtime: { name: `python${version}` } as never });
    expect(same.line).toMatch(new RegExp(`^python3 \\(Python ${version.replace('.', '\\.')}\\.\\d+\\)$`));
    expect(same.warning).toBeUndefined();

    const other = pythonVersionNote({ pythonExecutable: 'python3', runtime: { name: 'python3.99' } as never });
    expect(other.warning).toMatch(
      new RegExp(
        `^warning: the worker runs on Python ${version.replace('.', '\\.')}\\.\\d+ here, while its Lambda runtime python3\\.99 runs Python 3\\.99 in AWS: pass --python python3\\.99`,
      ),
    );
    expect(pythonVersionNote({ pythonExecutable: 'no-such-python', runtime: { name: 'python3.12' } as never })).toEqual(
      {
        line: 'no-such-python',
      },
    );
  });
});
