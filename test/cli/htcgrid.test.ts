// The `htcgrid` command as a user runs it: exit codes, result lines, readable errors.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import AdmZip from 'adm-zip';
import { openLocalBackends } from '../../lib/backends/local';
import { main } from '../../lib/cli';
import { FIXTURES, tempDir, waitFor } from '../support/local-grid';
import { runHtcgrid, type HtcgridRun } from '../support/htcgrid-cli';
import { htcgridBin } from '../support/fresh-dist';

const probe = path.join(FIXTURES, 'e2e', 'probe');
const ROOT = path.resolve(__dirname, '..', '..');

function taskFile(lines: string[]): string {
  const file = path.join(tempDir(), 'tasks.jsonl');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function readLines(file: string): Array<Record<string, any>> {
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, any>)
    .sort((a, b) => a.index - b.index);
}

describe('htcgrid run', () => {
  it('runs every task, writes one result line per task and exits 0 when all succeeded', async () => {
    const out = path.join(tempDir(), 'results.jsonl');
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--tasks',
      taskFile(['{"i":0}', '', '{"i":1}', '[1,2]']),
      '--out',
      out,
      '--slots',
      '2',
      '--no-progress',
    );

    expect(run.code).toBe(0);
    const lines = readLines(out);
    expect(lines.map((l) => l.index)).toEqual([0, 1, 2]);
    expect(lines.map((l) => l.result.event)).toEqual([{ i: 0 }, { i: 1 }, [1, 2]]);
    expect(lines[0]).toMatchObject({
      state: 'succeeded',
      attempts: 1,
      durationMs: expect.any(Number),
      taskId: expect.any(String),
    });
    // When it was submitted, waited and ran: queued until the handler started (at or after the claim), then ran
    // for the handler's own time, within the claim-to-result duration.
    const { submittedAt, startedAt, finishedAt, queuedMs, runMs, durationMs } = lines[0] as Record<string, number>;
    expect(runMs).toEqual(expect.any(Number));
    expect(queuedMs).toBeGreaterThanOrEqual(startedAt! - submittedAt!);
    expect(queuedMs! + runMs!).toBeLessThanOrEqual(finishedAt! - submittedAt!);
    expect(runMs).toBeLessThanOrEqual(durationMs!);
    expect(durationMs).toBe(finishedAt! - startedAt!);
    expect(submittedAt).toBeLessThanOrEqual(startedAt!);
    expect(run.stderr).toMatch(/succeeded\s+3/);
  });

  it('exits 1 and writes the error of each failed task', async () => {
    const out = path.join(tempDir(), 'results.jsonl');
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--handler',
      'lambda_function.raises',
      '--tasks',
      taskFile(['{"instrument":"cap"}']),
      '--out',
      out,
      '--max-attempts',
      '1',
      '--no-progress',
    );

    expect(run.code).toBe(1);
    const [line] = readLines(out);
    expect(line).toMatchObject({
      state: 'failed',
      error: { type: 'PricingError', message: 'cannot price cap' },
      attempts: 1,
    });
    expect(run.stderr).toMatch(/PricingError +1 task\(s\), .* cannot price cap/);
  });

  it('selects the handler from a grid configuration file with HTC-Grid keys', async () => {
    const config = path.join(tempDir(), 'python_runtime_grid_config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        agent_configuration: {
          lambda: { lambda_handler_file_name: 'lambda_function', lambda_handler_function_name: 'raises' },
        },
      }),
    );
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--config',
      config,
      '--tasks',
      taskFile(['{}']),
      '--max-attempts',
      '1',
      '--no-progress',
    );

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/PricingError/);
  });

  it('runs a TypeScript worker folder on Node without being told the runtime', async () => {
    const out = path.join(tempDir(), 'results.jsonl');
    const worker = path.join(ROOT, 'workers', 'typescript', 'pi-estimator');
    const run = await runHtcgrid(
      'run',
      '--worker',
      worker,
      '--handler',
      'index.handler',
      '--tasks',
      taskFile(['{"samples":1000,"seed":7}']),
      '--out',
      out,
      '--no-progress',
    );

    expect(run.code).toBe(0);
    const [line] = readLines(out);
    expect(line).toMatchObject({
      state: 'succeeded',
      result: { samples: 1000, seed: 7, estimate: expect.any(Number) },
    });
  });

  it('exits 2 naming the module when the handler module is missing', async () => {
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--handler',
      'missing_module.lambda_handler',
      '--tasks',
      taskFile(['{}']),
      '--no-progress',
    );

    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/missing_module/);
  });

  it('groups failures by error type with a count and one example each, and labels what its percentiles measure', async () => {
    const tasks = taskFile([
      '{"do": "fail", "instrument": "A"}',
      '{"do": "sleep", "seconds": "soon"}',
      '{"do": "fail", "instrument": "B"}',
      '{"do": "echo"}',
    ]);
    const out = path.join(tempDir(), 'results.jsonl');
    const worker = path.join(FIXTURES, 'http', 'worker');
    const run = await runHtcgrid('run', '--worker', worker, '--tasks', tasks, '--out', out, '--max-attempts', '1');

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/submit→result p50 \(ms\)/);
    const table = run.stderr.slice(run.stderr.indexOf('failures by type:'));
    expect(table.split('\n').slice(0, 3)).toEqual([
      'failures by type:',
      expect.stringMatching(
        /^ {2}PricingError {2}2 task\(s\), e\.g\. task #[02] \(\S+\) \[error\] after 1 attempt\(s\): cannot price [AB]$/,
      ),
      expect.stringMatching(/^ {2}TypeError {5}1 task\(s\), e\.g\. task #1 \(\S+\) \[error\] after 1 attempt\(s\): /),
    ]);
  });

  it('leaves no temporary grid folder behind when the worker cannot start', async () => {
    const tmp = tempDir();
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const tasks = taskFile(['{}']);
      const run = await runHtcgrid('run', '--worker', probe, '--handler', 'missing_module.handler', '--tasks', tasks);
      expect(run.code).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('htcgrid-run-'))).toEqual([]);
  });

  it('exits 2 naming the line of a task file that is not JSON, before running anything', async () => {
    const tasks = taskFile(['{"ok":1}', '{not json}']);
    const run = await runHtcgrid('run', '--worker', probe, '--tasks', tasks, '--no-progress');

    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`${path.basename(tasks)}:2: not valid JSON`));
  });

  it('--keep keeps the temporary grid folder, named on stderr, holding the tasks at the --priority given', async () => {
    const out = path.join(tempDir(), 'results.jsonl');
    const tasks = taskFile(['{"i":0}', '{"i":1}']);
    const run = await runHtcgrid('run', '--worker', probe, '--tasks', tasks, '--out', out, '--keep', '--priority', '2');

    expect(run.code).toBe(0);
    const kept = /grid data kept in (\S+)/.exec(run.stderr)?.[1];
    expect(kept).toBeDefined();
    const backends = openLocalBackends(kept!);
    try {
      const stored = await Promise.all(readLines(out).map((line) => backends.table.getTask(String(line.taskId))));
      expect(stored.map((t) => [t?.state, t?.priority])).toEqual([
        ['succeeded', 2],
        ['succeeded', 2],
      ]);
    } finally {
      await backends.close();
      fs.rmSync(kept!, { recursive: true, force: true });
    }
  });

  it('--tasks - reads the tasks from stdin', async () => {
    const out = path.join(tempDir(), 'results.jsonl');
    const stdin = Object.getOwnPropertyDescriptor(process, 'stdin')!;
    Object.defineProperty(process, 'stdin', {
      value: Readable.from(['{"i":0}\n{"i"', ':1}\n']),
      configurable: true,
    });
    let run: HtcgridRun;
    try {
      run = await runHtcgrid('run', '--worker', probe, '--tasks', '-', '--out', out, '--no-progress');
    } finally {
      Object.defineProperty(process, 'stdin', stdin);
    }

    expect(run.code).toBe(0);
    expect(readLines(out).map((line) => [line.index, line.state, line.result?.event])).toEqual([
      [0, 'succeeded', { i: 0 }],
      [1, 'succeeded', { i: 1 }],
    ]);
  });

  it('demo runs the mock-compute worker over the number of tasks asked for, all succeeding', async () => {
    const run = await runHtcgrid('demo', '--tasks', '5', '--slots', '1');

    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/running mock_compute_engine\.lambda_handler .* on 1 slot\(s\)/);
    expect(run.stderr).toMatch(/^tasks +5$/m);
    expect(run.stderr).toMatch(/^succeeded +5$/m);
    expect(run.stderr).toMatch(/^failed +0$/m);
  });

  it('exits 2 on a usage error', async () => {
    expect((await runHtcgrid('run', '--tasks', 'x.jsonl')).code).toBe(2);
    expect((await runHtcgrid('run', '--worker', probe, '--tasks', taskFile(['{}']), '--slots', 'zero')).code).toBe(2);
    const missingWorker = await runHtcgrid('run', '--worker', 'no/such/dir', '--tasks', taskFile(['{}']));
    expect(missingWorker.code).toBe(2);
    expect(missingWorker.stderr).toMatch(/worker no\/such\/dir does not exist/);
  });
});

describe('defaults that keep work', () => {
  const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
  const cwd = process.cwd();
  afterEach(() => {
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
    process.chdir(cwd);
  });
  const stdoutIsTty = (value: boolean): void => {
    Object.defineProperty(process.stdout, 'isTTY', { value, configurable: true, writable: true });
  };

  it('run without --out writes the result lines to stdout when it is piped', async () => {
    stdoutIsTty(false);
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--tasks',
      taskFile(['{"i":0}', '{"i":1}']),
      '--no-progress',
    );

    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n').map((l) => JSON.parse(l) as { index: number; result: { event: unknown } });
    expect(lines.map((l) => l.index).sort()).toEqual([0, 1]);
  });

  it('run without --out in a terminal keeps the results in a new file of the current folder and names it', async () => {
    stdoutIsTty(true);
    const dir = tempDir();
    const tasks = taskFile(['{"i":0}']);
    process.chdir(dir);
    fs.writeFileSync(path.join(dir, 'htcgrid-results-existing.jsonl'), 'kept\n');

    const runs = [
      await runHtcgrid('run', '--worker', probe, '--tasks', tasks, '--no-progress'),
      await runHtcgrid('run', '--worker', probe, '--tasks', tasks, '--no-progress'),
    ];

    const files = fs.readdirSync(dir).filter((f) => f !== 'htcgrid-results-existing.jsonl');
    expect(files).toHaveLength(2);
    for (const run of runs) {
      expect(run.code).toBe(0);
      expect(run.stdout).toBe('');
      const named = /results go to (\S+)/.exec(run.stderr)?.[1];
      expect(files).toContain(named);
      expect(JSON.parse(fs.readFileSync(path.join(dir, named!), 'utf8'))).toMatchObject({
        index: 0,
        state: 'succeeded',
      });
      expect(run.stderr).toMatch(new RegExp(`results\\s+${named}`));
    }
    expect(fs.readFileSync(path.join(dir, 'htcgrid-results-existing.jsonl'), 'utf8')).toBe('kept\n');
  });

  it('an empty task file is an error for run and submit', async () => {
    const empty = taskFile(['', '  ']);
    const run = await runHtcgrid('run', '--worker', probe, '--tasks', empty, '--no-progress');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/task file .*tasks\.jsonl holds no tasks: write one JSON event per line/);

    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const submit = await runHtcgrid('submit', '--dir', dir, '--tasks', empty);
    expect(submit.code).toBe(2);
    expect(submit.stderr).toMatch(/holds no tasks/);
  });

  it('a mistyped key of a configuration file is an error naming the key it meant', async () => {
    const config = path.join(tempDir(), 'grid.json');
    fs.writeFileSync(config, JSON.stringify({ max_attemps: 1, grid_storage_service: 'S3' }));
    const run = await runHtcgrid('run', '--worker', probe, '--config', config, '--tasks', taskFile(['{}']));

    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/max_attemps: unknown configuration key: did you mean max_attempts\?/);
    expect(run.stderr).not.toMatch(/grid_storage_service/);
  });

  it('an HTC-Grid key of a configuration file is accepted with a warning saying why it is ignored', async () => {
    const config = path.join(tempDir(), 'grid.json');
    fs.writeFileSync(config, JSON.stringify({ grid_storage_service: 'S3' }));
    const out = path.join(tempDir(), 'results.jsonl');
    const run = await runHtcgrid(
      'run',
      '--worker',
      probe,
      '--config',
      config,
      '--tasks',
      taskFile(['{}']),
      '--out',
      out,
    );

    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: .*grid_storage_service: an HTC-Grid key ignored here \(the data plane is S3/);
  });
});

describe('htcgrid local grid commands', () => {
  it('submits, reports status and results, and cancels against a grid folder', async () => {
    const dir = tempDir();
    // `local up` is long-running, so the test drives the same folder with an embedded agent in-process.
    const { startEmbeddedGrid } = await import('../../lib/cli');
    const { compileConfig } = await import('../../lib/core');
    const config = compileConfig({ slots: 1 });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config.document));
    const agentGrid = await startEmbeddedGrid({ dataDir: dir, config, worker: probe });
    try {
      const submitted = await runHtcgrid('submit', '--dir', dir, '--tasks', taskFile(['{"a":1}', '{"a":2}']));
      expect(submitted.code).toBe(0);
      const sessionId = submitted.stdout.trim();
      expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);

      const results = await runHtcgrid('results', sessionId, '--dir', dir);
      expect(results.code).toBe(0);
      expect(
        results.stdout
          .split('\n')
          .map((l) => JSON.parse(l).result.event.a)
          .sort(),
      ).toEqual([1, 2]);

      const status = await runHtcgrid('status', sessionId, '--dir', dir, '--json');
      expect(JSON.parse(status.stdout)).toMatchObject({
        total: 2,
        done: true,
        counts: { succeeded: 2 },
        summary: { tasks: 2, failures: [], running: { count: 2 }, queued: { count: 2 } },
      });
      const text = await runHtcgrid('status', sessionId, '--dir', dir);
      expect(text.stdout).toMatch(/^ {2}queued {3}p50 \d+ m?s, p95 .*, p99 .*, max /m);
      expect(text.stdout).toMatch(/^ {2}running {2}p50 \d+ m?s/m);

      expect((await runHtcgrid('cancel', sessionId, '--dir', dir)).stdout).toMatch(/cancelled 0 task/);
      const unknown = await runHtcgrid('status', 'nope', '--dir', dir);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/unknown session 'nope'/);

      const deleted = await runHtcgrid('delete', sessionId, '--dir', dir);
      expect(deleted.code).toBe(0);
      expect(deleted.stdout).toMatch(new RegExp(`deleted session ${sessionId}: 2 task\\(s\\)`));
      expect((await runHtcgrid('status', sessionId, '--dir', dir)).stderr).toMatch(/unknown session/);
      const deleteUnknown = await runHtcgrid('delete', 'nope', '--dir', dir);
      expect(deleteUnknown.code).toBe(2);
      expect(deleteUnknown.stderr).toMatch(/unknown session 'nope'/);
    } finally {
      await agentGrid.close(1000);
    }
  });

  it('Ctrl-C on submit --wait detaches, prints how to get the results back, and the session runs on', async () => {
    const dir = tempDir();
    const { startEmbeddedGrid } = await import('../../lib/cli');
    const { compileConfig } = await import('../../lib/core');
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const agentGrid = await startEmbeddedGrid({
      dataDir: dir,
      config: compileConfig({ slots: 1 }),
      worker: path.join(FIXTURES, 'e2e', 'slow'),
    });
    try {
      const listeners = process.listenerCount('SIGINT');
      const tasks = taskFile(['{"sleep_sec": 2}', '{"sleep_sec": 0}']);
      const waiting = runHtcgrid(
        'submit',
        '--dir',
        dir,
        '--tasks',
        tasks,
        '--wait',
        '--out',
        path.join(dir, 'r.jsonl'),
      );
      await waitFor(() => process.listenerCount('SIGINT') > listeners, 20_000, 'submit --wait to wait');
      process.emit('SIGINT');
      const run = await waiting;

      expect(run.code).toBe(130);
      const sessionId = /detached: session (\S+) keeps running/.exec(run.stderr)?.[1];
      expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
      expect(run.stderr).toContain(`htcgrid results ${sessionId} --dir ${dir} --out results.jsonl`);
      const later = await runHtcgrid('results', sessionId!, '--dir', dir);
      expect(later.code).toBe(0);
      expect(later.stdout.split('\n').map((l) => JSON.parse(l).state)).toEqual(['succeeded', 'succeeded']);
    } finally {
      await agentGrid.close(1000);
    }
  });

  it('status and submit --wait say when no agent is alive; the wait goes on until one runs the tasks', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const lines: string[] = [];
    const error = jest.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line));
    const log = jest.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let agentGrid: Awaited<ReturnType<typeof import('../../lib/cli').startEmbeddedGrid>> | undefined;
    try {
      const tasks = taskFile(['{"a":1}']);
      const out = path.join(dir, 'r.jsonl');
      const waiting = main(['node', 'htcgrid', 'submit', '--dir', dir, '--tasks', tasks, '--wait', '--out', out]);
      await waitFor(() => lines.some((l) => l.startsWith('0 agents on this grid')), 20_000, 'the no-agent line');
      expect(lines.find((l) => l.startsWith('0 agents'))).toBe(
        `0 agents on this grid: start one with \`htcgrid local up --dir ${dir} --worker <dir|zip>\`; queued tasks wait until then`,
      );
      const sessionId = /as session (\S+)/.exec(lines.join('\n'))![1]!;
      lines.length = 0;
      expect(await main(['node', 'htcgrid', 'status', sessionId, '--dir', dir])).toBe(0);
      expect(lines).toContainEqual(expect.stringMatching(/^0 agents on this grid: start one with/));

      const { startEmbeddedGrid } = await import('../../lib/cli');
      const { compileConfig } = await import('../../lib/core');
      agentGrid = await startEmbeddedGrid({ dataDir: dir, config: compileConfig({ slots: 1 }), worker: probe });

      expect(await waiting).toBe(0);
      lines.length = 0;
      await main(['node', 'htcgrid', 'status', sessionId, '--dir', dir, '--json']);
      expect(JSON.parse(lines[0]!)).toMatchObject({ done: true, agents: 1 });
    } finally {
      error.mockRestore();
      log.mockRestore();
      write.mockRestore();
      await agentGrid?.close(1000);
    }
  });

  it('status counts as running only what the slots can execute, and shows the tasks claimed ahead apart', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    const { startEmbeddedGrid } = await import('../../lib/cli');
    const { compileConfig } = await import('../../lib/core');
    const agentGrid = await startEmbeddedGrid({
      dataDir: dir,
      config: compileConfig({ slots: 1 }),
      worker: path.join(FIXTURES, 'e2e', 'slow'),
    });
    try {
      const handle = await agentGrid.client.submit(Array.from({ length: 4 }, () => ({ sleep_sec: 5 })));
      await waitFor(async () => (await handle.status()).counts.running >= 3, 20_000, 'tasks claimed ahead');
      // The agent's heartbeat (every 2 s) tells its busy slot.
      await waitFor(
        async () => (await agentGrid.client.aliveAgents())?.[0]?.busySlots === 1,
        20_000,
        'a heartbeat with the busy slot',
      );

      const status = await runHtcgrid('status', handle.sessionId, '--dir', dir);
      expect(status.stdout).toMatch(/pending \d+, running 1 \+ \d+ claimed ahead, succeeded 0/);
      expect(status.stdout).toMatch(/claimed ahead: held by an agent until one of the grid's 1 slot\(s\) is free/);
      expect(status.stdout).toMatch(/^1 agent\(s\) alive, 1 slot\(s\): 1 busy, 0 idle$/m);
      const json = JSON.parse((await runHtcgrid('status', handle.sessionId, '--dir', dir, '--json')).stdout);
      expect(json).toMatchObject({
        agents: 1,
        slots: 1,
        busySlots: 1,
        idleSlots: 0,
        runtimeRestarts: 0,
        waitingForDisk: 0,
      });
      expect(json.claimedAheadAtLeast).toBe(json.counts.running - 1);
      await handle.cancel();
    } finally {
      await agentGrid.close(0);
    }
  });

  it('refuses a folder that is not a local grid', async () => {
    const run = await runHtcgrid('status', 'x', '--dir', tempDir());
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/is not a local grid folder/);
  });
});

describe('htcgrid bundle and the built binary', () => {
  it('bundles a worker folder into a Lambda zip with the handler at its root', async () => {
    const zip = path.join(tempDir(), 'worker.zip');
    const run = await runHtcgrid('bundle', probe, '-o', zip);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/python worker/);
    // Inside the zip: the handler module at the root (not under a folder), byte for byte the worker's file.
    const entries = new AdmZip(zip).getEntries();
    const handler = entries.find((e) => e.entryName === 'lambda_function.py');
    expect(handler?.getData().toString('utf8')).toBe(fs.readFileSync(path.join(probe, 'lambda_function.py'), 'utf8'));
    expect(entries.filter((e) => !e.isDirectory && e.entryName.startsWith('probe/'))).toEqual([]);
  });

  it('the installed `htcgrid` binary prints help and exits 2 on an unknown command', () => {
    const bin = htcgridBin();
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/run \[options\]/);
    const bad = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
  });
});
