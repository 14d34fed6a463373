// The host's tools the twin drives (ip, unshare, nsenter, setpriv, chroot, overlayfs, cgroups), checked up front so a
// machine that cannot run ECS tasks gets one clear message instead of a half-started run.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { TwinUnsupportedError } from '../errors';

const exec = promisify(execFile);

export async function run(command: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await exec(command, [...args], { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Where the twin puts one cgroup per container (so a stop can kill all its processes, as Docker does). */
export function cgroupRoot(): string {
  for (const candidate of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (fs.existsSync(`${candidate}/cgroup.procs`) && fs.existsSync(`${candidate}/cgroup.controllers`))
      return candidate;
  }
  if (fs.existsSync('/sys/fs/cgroup/pids/cgroup.procs')) return '/sys/fs/cgroup/pids';
  throw new TwinUnsupportedError(
    'no writable cgroup hierarchy under /sys/fs/cgroup: the twin needs one to stop containers',
  );
}

/**
 * Checks that this machine can run ECS tasks the twin's way: root, network/mount/PID namespaces, overlayfs, and the
 * util-linux and iproute2 tools. Throws `TwinUnsupportedError` naming what is missing.
 */
export async function checkHost(): Promise<void> {
  const problems: string[] = [];
  if (process.platform !== 'linux') problems.push(`this is ${process.platform}: ECS tasks need Linux namespaces`);
  if (process.getuid?.() !== 0) problems.push('not root: creating namespaces, veth pairs and bind mounts needs root');
  for (const tool of ['ip', 'unshare', 'nsenter', 'setpriv', 'chroot', 'python3']) {
    if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => fs.existsSync(`${d}/${tool}`))) {
      problems.push(`${tool} is missing (Debian: util-linux, iproute2, coreutils, python3)`);
    }
  }
  if (!fs.existsSync('/usr/bin/aws'))
    problems.push("/usr/bin/aws is missing: the AWS CLI image stands on Debian's awscli (apt-get install awscli)");
  if (problems.length === 0) {
    if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay')) problems.push('overlayfs is not available');
    try {
      await run('unshare', ['--net', '--pid', '--mount', '--fork', 'true']);
    } catch (error) {
      problems.push(`namespaces are not permitted here: ${(error as Error).message}`);
    }
    try {
      cgroupRoot();
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) {
    throw new TwinUnsupportedError(
      `this machine cannot run the deployment twin's ECS tasks:\n  - ${problems.join('\n  - ')}`,
    );
  }
}

/** Why this machine cannot run the twin's ECS tasks, checked synchronously (for test suites); undefined when it can. */
export function unsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return `this is ${process.platform}, not Linux`;
  if (process.getuid?.() !== 0) return 'not root: namespaces, veth pairs and bind mounts need root';
  if (!fs.existsSync('/usr/bin/aws')) return 'no /usr/bin/aws (apt-get install awscli)';
  try {
    execFileSync('unshare', ['--net', '--pid', '--mount', '--fork', 'true'], { stdio: 'ignore' });
  } catch (error) {
    return `namespaces are not permitted here (${(error as Error).message})`;
  }
  return undefined;
}
