// Runs the `htcgrid` command in this process and captures what it prints, as a user would see it.
import { main } from '../../lib/cli';

export interface HtcgridRun {
  readonly code: number;
  /** Lines printed with console.log, joined. */
  readonly stdout: string;
  /** Lines printed with console.error, joined (progress written straight to process.stderr is dropped). */
  readonly stderr: string;
}

export async function runHtcgrid(...args: string[]): Promise<HtcgridRun> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
  const error = jest.spyOn(console, 'error').mockImplementation((line: string) => void err.push(line));
  const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(['node', 'htcgrid', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}
