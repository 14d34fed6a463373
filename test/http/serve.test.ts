// `htcgrid serve`: the API of a grid folder another process runs; `--http` addresses.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseHttpAddress } from '../../lib/cli/commands/serve';
import { FIXTURES, tempDir, waitFor } from '../support/local-grid';
import { startLocalUp, type LocalUp } from './local-up';
import { htcgridBin } from '../support/fresh-dist';

describe('--http addresses', () => {
  test('default to loopback on port 8642 and accept host:port, :port, a port or [v6]:port', () => {
    expect(parseHttpAddress(true)).toEqual({ host: '127.0.0.1', port: 8642 });
    expect(parseHttpAddress('0.0.0.0:9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseHttpAddress(':9001')).toEqual({ host: '127.0.0.1', port: 9001 });
    expect(parseHttpAddress('9002')).toEqual({ host: '127.0.0.1', port: 9002 });
    expect(parseHttpAddress('[::1]:9003')).toEqual({ host: '::1', port: 9003 });
    expect(() => parseHttpAddress('localhost:99999')).toThrow(/is not an address: use host:port/);
  });
});

describe('htcgrid serve', () => {
  let grid: LocalUp;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('htcgrid-serve-');
    grid = await startLocalUp(dir, ['--worker', path.join(FIXTURES, 'http', 'worker'), '--slots', '1']);
  }, 90_000);
  afterAll(async () => {
    await grid?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("serves a running grid folder's API behind its own token, without the agent's output", async () => {
    const first = JSON.parse(fs.readFileSync(grid.clientConfig, 'utf8')) as { api_token: string; api_url: string };
    const created = await fetch(`${first.api_url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${first.api_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tasks: [{ do: 'print', say: 'hi' }] }),
    });
    const { sessionId } = (await created.json()) as { sessionId: string };
    const serve = spawn(process.execPath, [htcgridBin(), 'serve', '--dir', dir, '--http', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let text = '';
    serve.stderr.on('data', (c: Buffer) => (text += c.toString()));
    try {
      await waitFor(() => /HTTP API on (\S+) \(token required: Authorization: Bearer (\S+)\)/.test(text), 30_000);
      const [, url, token] = /HTTP API on (\S+) \(token required: Authorization: Bearer (\S+)\)/.exec(text)!;
      expect(token).not.toBe(first.api_token);
      const headers = { authorization: `Bearer ${token}` };
      expect((await fetch(`${url}/v1`, { headers: { authorization: `Bearer ${first.api_token}` } })).status).toBe(401);
      await waitFor(async () => {
        const status = (await (await fetch(`${url}/v1/sessions/${sessionId}`, { headers })).json()) as {
          done: boolean;
        };
        return status.done;
      }, 30_000);
      const detail = (await (await fetch(`${url}/v1/tasks/${sessionId}_0`, { headers })).json()) as {
        result: unknown;
        output: { available: boolean; note: string };
      };
      expect(detail.result).toEqual({ said: 'hi' });
      expect(detail.output).toEqual({ available: false, note: expect.stringMatching(/local up --http/) });
    } finally {
      serve.kill('SIGTERM');
      await new Promise((resolve) => serve.once('exit', resolve));
    }
  }, 90_000);

  test('refuses a folder that holds no grid, naming the command that makes one', async () => {
    const empty = tempDir('htcgrid-serve-empty-');
    const serve = spawn(process.execPath, [htcgridBin(), 'serve', '--dir', empty], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let text = '';
    serve.stderr.on('data', (c: Buffer) => (text += c.toString()));
    const code = await new Promise((resolve) => serve.once('exit', resolve));
    expect(code).toBe(2);
    expect(text).toMatch(/is not a local grid folder .*htcgrid local up/);
  });
});
