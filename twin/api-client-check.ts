// The HTTP API through the twin: a Python user's session (clients/python, SigV4 by botocore) through the stack's
// function URL, with a role granted only `api.grantInvoke`, and an unsigned request refused as AWS_IAM refuses it.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TwinDeployment } from './twin-deployment';

export interface ApiCheck {
  /** Why the check did not run (no function URL in the template, no Python with botocore). */
  skipped?: string;
  tasks: number;
  succeeded: number;
  lost: number;
  duplicated: number;
  /** Status of an unsigned request (403 expected). */
  unsignedStatus?: number;
  requests: number;
  failures: string[];
}

/** The Python session, as a user would write it: connect with the stack outputs, submit, stream the results. */
const SESSION_SCRIPT = `
import json, os, sys
sys.path.insert(0, os.environ["TWIN_PY_CLIENT"])
from htcgrid import Grid
grid = Grid.connect(os.environ["TWIN_OUTPUTS"], stack=os.environ["TWIN_STACK"])
with open(os.environ["TWIN_EVENTS"]) as f:
    events = [json.loads(line) for line in f if line.strip()]
session = grid.submit(events)
states = {}
for r in session.results():
    states.setdefault(r.index, []).append(r.state)
print(json.dumps({"session": session.session_id, "states": states}))
`;

/** A Python that can sign requests (botocore): `$HTCGRID_PYTHON`, `python3`, then Debian's. */
export function pythonWithBotocore(): string | undefined {
  const candidates = [process.env.HTCGRID_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[];
  return candidates.find((py) => spawnSync(py, ['-c', 'import botocore'], { stdio: 'ignore' }).status === 0);
}

export async function checkApi(
  twin: TwinDeployment,
  options: { repoRoot: string; tasks: number; event: (i: number) => unknown; timeoutSec: number },
): Promise<ApiCheck> {
  const check: ApiCheck = { tasks: options.tasks, succeeded: 0, lost: 0, duplicated: 0, requests: 0, failures: [] };
  const front = twin.functionUrls[0];
  if (!front) return { ...check, skipped: 'the template has no function URL' };
  const python = pythonWithBotocore();
  if (!python) return { ...check, skipped: 'no Python with botocore (set HTCGRID_PYTHON)' };

  const unsigned = await fetch(`${front.url}v1`).catch(() => undefined);
  check.unsignedStatus = unsigned?.status;
  if (unsigned?.status !== 403)
    check.failures.push(`API: an unsigned request got ${unsigned?.status ?? 'no answer'}, not 403`);

  const eventsFile = path.join(twin.workDir, 'api-events.jsonl');
  fs.writeFileSync(
    eventsFile,
    Array.from({ length: options.tasks }, (_, i) => JSON.stringify(options.event(i))).join('\n'),
  );
  const before = front.stats.requests;
  // Asynchronously: the function URL's front and the recording proxies answer from this process.
  const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      python,
      ['-c', SESSION_SCRIPT],
      {
        encoding: 'utf8',
        timeout: options.timeoutSec * 1000,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          PATH: process.env.PATH,
          ...twin.roleEnv(twin.apiClientRoleId),
          TWIN_PY_CLIENT: path.join(options.repoRoot, 'clients', 'python'),
          TWIN_OUTPUTS: twin.outputsFile,
          TWIN_STACK: twin.stack.stackName,
          TWIN_EVENTS: eventsFile,
        },
      },
      (error, stdout, stderr) =>
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
  check.requests = front.stats.requests - before;
  if (run.status !== 0) {
    check.failures.push(
      `API: the Python session exited ${run.status}: ${run.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
    check.lost = options.tasks;
    return check;
  }
  const { states } = JSON.parse(run.stdout.trim().split('\n').pop()!) as { states: Record<string, string[]> };
  for (let i = 0; i < options.tasks; i++) {
    const seen = states[String(i)] ?? [];
    if (seen.length === 0) check.lost++;
    if (seen.length > 1) check.duplicated++;
    if (seen[0] === 'succeeded') check.succeeded++;
  }
  if (check.lost > 0) check.failures.push(`API: ${check.lost} task(s) lost`);
  if (check.duplicated > 0) check.failures.push(`API: ${check.duplicated} task(s) streamed more than once`);
  if (check.succeeded + check.lost < options.tasks)
    check.failures.push(`API: ${options.tasks - check.succeeded - check.lost} task(s) did not succeed`);
  return check;
}
