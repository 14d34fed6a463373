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

/**
 * The lines the CLI prints with console.error (its stderr) during each test of the calling `describe`: emptied before
 * each test, console.error given back after it.
 */
export function stderrLinesOfEachTest(): string[] {
  const lines: string[] = [];
  let error: jest.SpyInstance | undefined;
  beforeEach(() => {
    lines.length = 0;
    error = jest.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line));
  });
  afterEach(() => error?.mockRestore());
  return lines;
}
