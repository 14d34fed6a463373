// What workers print, shown per task: readable lines in a terminal, JSON lines otherwise.
import path from 'node:path';
import fs from 'node:fs';
import { main } from '../../lib/cli';
import { workerOutputPrinter } from '../../lib/cli/worker-output';
import { FIXTURES, tempDir } from '../support/local-grid';
import { stderrLinesOfEachTest } from '../support/htcgrid-cli';

describe('worker output', () => {
  const lines = stderrLinesOfEachTest();

  it('reads as one line per printed line in a terminal, prefixed with the task and marked by stream', () => {
    const print = workerOutputPrinter(true);
    print('0b5c6f1e-9d7a-4c1e-8f00-123456789abc_12', 'stdout', 'pricing swap\nspot 101.5\n');
    print('0b5c6f1e-9d7a-4c1e-8f00-123456789abc_12', 'stderr', 'warning: stale curve\n');
    print(undefined, 'stderr', 'runtime says hi\n');

    expect(lines).toEqual([
      'task 0b5c6f1e…_12 | pricing swap',
      'task 0b5c6f1e…_12 | spot 101.5',
      'task 0b5c6f1e…_12 ! warning: stale curve',
      'task runtime ! runtime says hi',
    ]);
  });

  it('is one JSON object per chunk when stderr is not a terminal', () => {
    workerOutputPrinter(false)('s_3', 'stdout', 'a\nb\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([{ taskId: 's_3', stream: 'stdout', text: 'a\nb' }]);
  });

  it('reaches the user of htcgrid run without any log level', async () => {
    const tasks = path.join(tempDir(), 'tasks.jsonl');
    fs.writeFileSync(tasks, '{"do": "print", "say": "hello"}\n');
    const out = path.join(tempDir(), 'results.jsonl');
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const isTty = process.stderr.isTTY;
    try {
      const worker = path.join(FIXTURES, 'http', 'worker');
      expect(await main(['node', 'htcgrid', 'run', '--worker', worker, '--tasks', tasks, '--out', out])).toBe(0);
    } finally {
      write.mockRestore();
    }
    const printed = lines.filter((l) => l.startsWith(isTty ? 'task ' : '{"taskId"'));
    expect(printed.join('\n')).toMatch(/to stdout: hello/);
    expect(printed.join('\n')).toMatch(/to stderr: hello/);
  });
});
