// The twin's VPC stand-in: one bridge on the host holding the endpoints (the emulator proxies, and 169.254.170.2
// serving task credentials as ECS does), and one veth pair per ECS task into its network namespace (awsvpc: the
// task's containers share that namespace, its localhost, and one address on the bridge). No route leads further.
import fs from 'node:fs';
import { TwinUnsupportedError } from '../errors';
import { run } from './host-tools';

/** ECS serves task role credentials here (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`). */
export const ECS_CREDENTIALS_ADDRESS = '169.254.170.2';

export class TwinBridge {
  private constructor(
    readonly name: string,
    /** The bridge's own address: where containers reach the endpoints. */
    readonly hostAddress: string,
    private readonly prefix: string,
  ) {}

  /** Creates the bridge on a free link-local /24 (169.254.100-169.x). */
  static async create(runId: string): Promise<TwinBridge> {
    await removeStaleBridges();
    const used = await run('ip', ['-4', '-o', 'addr', 'show']);
    let third = 100 + (process.pid % 70);
    for (let i = 0; i < 70 && used.includes(`169.254.${third}.`); i++) third = 100 + ((third - 99) % 70);
    const name = `twbr${runId}`.slice(0, 15);
    const prefix = `169.254.${third}`;
    try {
      await run('ip', ['link', 'add', name, 'type', 'bridge']);
      await run('ip', ['addr', 'add', `${prefix}.1/24`, 'dev', name]);
      await run('ip', ['addr', 'add', `${ECS_CREDENTIALS_ADDRESS}/32`, 'dev', name]);
      await run('ip', ['link', 'set', name, 'up']);
    } catch (error) {
      await run('ip', ['link', 'del', name]).catch(() => undefined);
      throw new TwinUnsupportedError(`cannot create the twin's bridge ${name}: ${(error as Error).message}`);
    }
    return new TwinBridge(name, `${prefix}.1`, prefix);
  }

  /** Moves one end of a new veth pair into the task's network namespace (held by `holderPid`) as eth0. */
  async attachTask(holderPid: number, index: number): Promise<string> {
    const hostEnd = `${this.name.slice(0, 9)}h${index}`.slice(0, 15);
    const taskEnd = `${this.name.slice(0, 9)}t${index}`.slice(0, 15);
    const address = `${this.prefix}.${10 + index}`;
    await run('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', taskEnd]);
    await run('ip', ['link', 'set', taskEnd, 'netns', String(holderPid)]);
    await run('ip', ['link', 'set', hostEnd, 'master', this.name, 'up']);
    const inTask = (...args: string[]) => run('nsenter', ['--target', String(holderPid), '--net', '--', 'ip', ...args]);
    await inTask('link', 'set', taskEnd, 'name', 'eth0');
    await inTask('addr', 'add', `${address}/24`, 'dev', 'eth0');
    await inTask('link', 'set', 'eth0', 'up');
    await inTask('link', 'set', 'lo', 'up');
    await inTask('route', 'add', `${ECS_CREDENTIALS_ADDRESS}/32`, 'via', this.hostAddress);
    return address;
  }

  async remove(): Promise<void> {
    await run('ip', ['link', 'del', this.name]).catch(() => undefined);
  }
}

/** Bridges of twin runs whose process is gone (`twbr<pid>...`). */
async function removeStaleBridges(): Promise<void> {
  const links = await run('ip', ['-o', 'link', 'show', 'type', 'bridge']).catch(() => '');
  for (const m of links.matchAll(/^\d+: (twbr(\d+)[a-z0-9]*)[:@]/gm)) {
    const pid = Number(m[2]);
    if (!fs.existsSync(`/proc/${pid}`)) await run('ip', ['link', 'del', m[1]!]).catch(() => undefined);
  }
}
