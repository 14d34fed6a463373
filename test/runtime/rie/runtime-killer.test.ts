// RuntimeKiller on real process trees shaped like an ECS slot: a lambda-rie stand-in with Python children.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import {
  RuntimeKiller,
  descendantsOf,
  endpointPort,
  listProcesses,
  rieAddressPort,
  type RuntimeKillOutcome,
} from '../../../lib/runtime/rie';
import { freePort } from '../../support/emulators';
import { waitFor } from '../../support/local-grid';
import {
  buildSlotFixtures,
  descendantPids,
  isAlive,
  runKillSlot,
  startSlot,
  type SlotFixtures,
  type SlotProcess,
} from './slot-processes';

let fixtures: SlotFixtures;
const slots: SlotProcess[] = [];

beforeAll(() => {
  fixtures = buildSlotFixtures();
});

afterAll(() => fixtures.remove());

afterEach(async () => {
  for (const s of slots.splice(0)) await s.stop();
});

async function sleeperSlot(): Promise<SlotProcess> {
  const slot = await startSlot(fixtures, await freePort(), ['--sleeper']);
  slots.push(slot);
  // The Python child starts its `sleep` grandchild right away; wait until it is there (the tree is complete).
  await waitFor(
    () => descendantsOf([slot.pid], listProcesses()).some((p) => p.cmdline[0] === 'sleep'),
    10_000,
    'the Python child and its sleep grandchild',
  );
  return slot;
}

function expectKind<K extends RuntimeKillOutcome['kind']>(
  outcome: RuntimeKillOutcome,
  kind: K,
): Extract<RuntimeKillOutcome, { kind: K }> {
  expect(outcome.kind).toBe(kind);
  return outcome as Extract<RuntimeKillOutcome, { kind: K }>;
}

describe('RuntimeKiller', () => {
  it("kills the runtime under the slot's lambda-rie and its children within a second, and leaves lambda-rie alive", async () => {
    const slot = await sleeperSlot();
    const runtime = descendantPids(slot.pid);

    const outcome = expectKind(await new RuntimeKiller({ port: slot.port, confirmTimeoutMs: 1000 }).kill(), 'killed');

    expect(outcome.riePids).toEqual([slot.pid]);
    expect([...outcome.killedPids].sort()).toEqual([...runtime].sort());
    expect(outcome.killedPids).toContain(slot.childPid);
    expect(outcome.survivors).toEqual([]);
    expect(runtime.filter(isAlive)).toEqual([]);
    expect(isAlive(slot.pid)).toBe(true);
  });

  it('touches only the slot whose port it was given', async () => {
    const target = await sleeperSlot();
    const neighbour = await sleeperSlot();

    expectKind(await new RuntimeKiller({ port: target.port }).kill(), 'killed');

    expect(isAlive(target.childPid)).toBe(false);
    expect(isAlive(neighbour.childPid)).toBe(true);
    expect(descendantsOf([neighbour.pid], listProcesses()).map((p) => p.cmdline[0])).toContain('sleep');
  });

  it('reports no-runtime when lambda-rie has nothing under it (killed twice)', async () => {
    const slot = await sleeperSlot();
    const killer = new RuntimeKiller({ port: slot.port });
    expectKind(await killer.kill(), 'killed');

    const again = expectKind(await killer.kill(), 'no-runtime');

    expect(again.riePids).toEqual([slot.pid]);
  });

  it('reports rie-not-found with the pidMode hint, and logs it, when no lambda-rie of that port is visible', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });

    const outcome = expectKind(await new RuntimeKiller({ port, logger }).kill(), 'rie-not-found');

    expect(outcome.message).toContain(`--runtime-interface-emulator-address <host>:${port}`);
    expect(outcome.message).toContain('pidMode: task');
    expect(lines.join('')).toMatch(/"level":40.*cannot stop the Lambda runtime/);
  });

  it('reports unsupported when there is no process table to read', async () => {
    const missing = path.join(os.tmpdir(), `htcgrid-no-proc-${process.pid}`);

    const outcome = expectKind(await new RuntimeKiller({ port: 8080, procRoot: missing }).kill(), 'unsupported');

    expect(outcome.message).toContain(missing);
  });

  const asRoot = process.getuid?.() === 0 ? it : it.skip;
  asRoot(
    'reports permission-denied, killing nothing, when run under another uid than the runtime (as nobody)',
    async () => {
      const slot = await sleeperSlot();

      const outcome = expectKind(
        await runKillSlot(fixtures, slot.port, { uid: 65534, gid: 65534 }),
        'permission-denied',
      );

      expect(outcome.riePids).toEqual([slot.pid]);
      expect(outcome.deniedPids).toContain(slot.childPid);
      expect(outcome.killedPids).toEqual([]);
      expect(outcome.message).toContain('EPERM');
      expect(isAlive(slot.childPid)).toBe(true);
    },
  );

  it('the same killer in its own process under the same uid kills the runtime', async () => {
    const slot = await sleeperSlot();

    const outcome = expectKind(await runKillSlot(fixtures, slot.port), 'killed');

    expect(outcome.killedPids).toContain(slot.childPid);
    expect(isAlive(slot.childPid)).toBe(false);
    expect(isAlive(slot.pid)).toBe(true);
  });
});

describe('process table helpers', () => {
  it("reads lambda-rie's port from both flag spellings, and nothing from other command lines", () => {
    expect(
      rieAddressPort(['/usr/local/bin/aws-lambda-rie', '--runtime-interface-emulator-address', '0.0.0.0:8081']),
    ).toBe(8081);
    expect(rieAddressPort(['aws-lambda-rie', '--runtime-interface-emulator-address=[::]:8082', 'x'])).toBe(8082);
    expect(rieAddressPort(['node', 'agent.js', '--port', '8080'])).toBeUndefined();
    expect(rieAddressPort(['aws-lambda-rie', '--runtime-interface-emulator-address'])).toBeUndefined();
  });

  it('takes the port of an endpoint, defaulting by scheme', () => {
    expect(endpointPort('http://localhost:8083')).toBe(8083);
    expect(endpointPort('http://localhost')).toBe(80);
  });

  it('lists this process with its parent and finds descendants parents first', () => {
    const me = listProcesses().find((p) => p.pid === process.pid);
    const tree = descendantsOf(
      [1],
      [
        { pid: 3, ppid: 2, state: 'S', cmdline: [] },
        { pid: 2, ppid: 1, state: 'S', cmdline: [] },
        { pid: 4, ppid: 9, state: 'S', cmdline: [] },
      ],
    );

    expect(me?.ppid).toBe(process.ppid);
    expect(me?.cmdline).toContain(process.argv[1]);
    expect(tree.map((p) => p.pid)).toEqual([2, 3]);
  });
});

// The killer reads /proc through the filesystem only: a fake table proves the parsing of odd `comm` names.
describe('RuntimeKiller on a process table written by hand', () => {
  it('parses stat lines whose command name holds spaces and parentheses', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-fake-proc-'));
    const write = (pid: number, stat: string, argv: string[]) => {
      fs.mkdirSync(path.join(root, String(pid)));
      fs.writeFileSync(path.join(root, String(pid), 'stat'), stat);
      fs.writeFileSync(path.join(root, String(pid), 'cmdline'), `${argv.join('\0')}\0`);
    };
    write(10, '10 (aws-lambda-rie) S 1 10 10 0', [
      'aws-lambda-rie',
      '--runtime-interface-emulator-address',
      '0.0.0.0:8080',
    ]);
    write(11, '11 (python (3) x) S 10 11 11 0', ['python3', 'bootstrap.py']);
    write(12, '12 (gone) Z 10 12 12 0', []);

    const found = new RuntimeKiller({ port: 8080, procRoot: root }).find();
    fs.rmSync(root, { recursive: true, force: true });

    expect(found.riePids).toEqual([10]);
    expect(found.runtime.map((p) => p.pid)).toEqual([11]);
  });
});
