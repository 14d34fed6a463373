// What the CLI says while a grid starts: a warning for slots far beyond the CPUs, and progress while it starts.
import { slotsWarning, withStartupProgress } from '../../lib/cli/startup-notice';
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
});
