// The agent image's build step, run without Docker: the Dockerfile's esbuild command yields a self-contained agent.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from './grid-app';

const DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, 'docker', 'agent', 'Dockerfile'), 'utf8');

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-agent-image-'));
});
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** The arguments of the Dockerfile's `RUN npx esbuild ...` instruction (line continuations joined). */
function esbuildArgs(): string[] {
  const joined = DOCKERFILE.replace(/\\\n\s*/g, ' ');
  const line = joined.split('\n').find((l) => l.startsWith('RUN npx esbuild '));
  if (!line) throw new Error('no RUN npx esbuild line in docker/agent/Dockerfile');
  return line.replace('RUN npx esbuild ', '').trim().split(/\s+/);
}

describe('the agent image', () => {
  it('builds from public.ecr.aws Node 22 images and runs as the non-root node user', () => {
    expect(DOCKERFILE).toMatch(/^ARG NODE_IMAGE=public\.ecr\.aws\/docker\/library\/node:22/m);
    expect(DOCKERFILE).not.toMatch(/^FROM (?!\$\{NODE_IMAGE\})/m);
    expect(DOCKERFILE).toMatch(/^USER node$/m);
    expect(DOCKERFILE).toMatch(/^ENTRYPOINT \["node", "--enable-source-maps", "\/app\/agent\.js"\]$/m);
  });

  it('bundles bin/agent.ts into one file that starts without node_modules and reports missing resources', () => {
    const outfile = path.join(scratch, 'app', 'agent.js');
    const args = esbuildArgs().map((a) => (a.startsWith('--outfile=') ? `--outfile=${outfile}` : a));

    execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'esbuild'), args, { cwd: REPO_ROOT, stdio: 'pipe' });
    const run = spawnSync(process.execPath, [outfile], {
      cwd: path.dirname(outfile),
      env: { PATH: process.env.PATH, HTCGRID_CONFIG: '{}' },
      encoding: 'utf8',
      timeout: 30_000,
    });

    expect(run.status).not.toBe(0);
    expect(`${run.stdout}${run.stderr}`).toContain('HTCGRID_TABLE_NAME is not set');
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/Cannot find module/);
  });
});
