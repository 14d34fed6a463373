// The agent image, without Docker: the Dockerfile copies the agent bundled at synth, which runs without node_modules.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleAgent } from '../../lib/infra/agent-image';
import { REPO_ROOT } from './grid-app';

const DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, 'docker', 'agent', 'Dockerfile'), 'utf8');

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-agent-image-'));
});
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the agent image', () => {
  it('copies the bundled agent onto a public.ecr.aws Node 22 image and runs it as the non-root node user', () => {
    expect(DOCKERFILE).toMatch(/^ARG NODE_IMAGE=public\.ecr\.aws\/docker\/library\/node:22/m);
    expect(DOCKERFILE).not.toMatch(/^FROM (?!\$\{NODE_IMAGE\})/m);
    expect(DOCKERFILE).not.toMatch(/^RUN /m);
    expect(DOCKERFILE).toMatch(/^COPY agent\.js agent\.js\.map \.\/$/m);
    expect(DOCKERFILE).toMatch(/^USER node$/m);
    expect(DOCKERFILE).toMatch(/^ENTRYPOINT \["node", "--enable-source-maps", "\/app\/agent\.js"\]$/m);
  });

  it('bundles bin/agent.ts into one file that starts without node_modules and reports missing resources', () => {
    const app = path.join(scratch, 'app');

    bundleAgent(app);
    const run = spawnSync(process.execPath, [path.join(app, 'agent.js')], {
      cwd: app,
      env: { PATH: process.env.PATH, HTCGRID_CONFIG: '{}' },
      encoding: 'utf8',
      timeout: 30_000,
    });

    expect(fs.readdirSync(app).sort()).toEqual(['agent.js', 'agent.js.map']);
    expect(run.status).not.toBe(0);
    expect(`${run.stdout}${run.stderr}`).toContain('HTCGRID_TABLE_NAME is not set');
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/Cannot find module/);
  });

  it('bundles the same bytes wherever it is built, so an unchanged agent keeps its image asset', () => {
    bundleAgent(path.join(scratch, 'one'));
    bundleAgent(path.join(scratch, 'two'));

    for (const file of ['agent.js', 'agent.js.map']) {
      expect(
        fs.readFileSync(path.join(scratch, 'one', file)).equals(fs.readFileSync(path.join(scratch, 'two', file))),
      ).toBe(true);
    }
  });
});
