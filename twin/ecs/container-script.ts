// The shell script that turns a process inside an ECS task's namespaces into one container: its own mount namespace
// with the host's directories as read-only (or copy-on-write) layers, the image stand-in's files and the task's
// volumes bind mounted at their paths, a /proc of the task's PID namespace, then the container's user, environment,
// working directory and command, exactly as the task definition gives them.

export interface ContainerScriptSpec {
  /** Host path where the container's root is mounted (inside its own mount namespace only). */
  readonly root: string;
  /** Host path for the container's writable layer (a tmpfs, also private). */
  readonly scratch: string;
  /** The `cgroup.procs` file the container's processes join. */
  readonly cgroupProcs: string;
  readonly readonlyRoot: boolean;
  readonly files: readonly { readonly path: string; readonly source: string }[];
  readonly volumes: readonly {
    readonly hostPath: string;
    readonly containerPath: string;
    readonly readOnly: boolean;
  }[];
  readonly workingDir: string;
  readonly env: Readonly<Record<string, string>>;
  readonly user?: { readonly uid: number; readonly gid: number };
  readonly argv: readonly string[];
}

/** Shell single quoting. */
export function sq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function containerScript(spec: ContainerScriptSpec): string {
  const R = sq(spec.root);
  const lines = [
    'set -eu',
    `echo $$ > ${sq(spec.cgroupProcs)}`,
    `mount -t tmpfs -o mode=0755 twin-layer ${sq(spec.scratch)}`,
    `mount -t tmpfs -o mode=0755 twin-rootfs ${R}`,
    // Every top-level directory of the host as an overlay (reads from the host, writes stay in this container).
    'LAYERS=""',
    `for e in /*; do n="\${e#/}"; case "$n" in proc|sys|dev|lost+found) continue ;; esac`,
    `  if [ -L "$e" ]; then ln -s "$(readlink "$e")" ${R}/"$n"`,
    `  elif [ -d "$e" ]; then mkdir ${R}/"$n" ${sq(spec.scratch)}/"u-$n" ${sq(spec.scratch)}/"w-$n"; mount -t overlay twin-layer -o "lowerdir=$e,upperdir=${spec.scratch}/u-$n,workdir=${spec.scratch}/w-$n" ${R}/"$n"; LAYERS="$LAYERS $n"; fi`,
    'done',
    `mkdir ${R}/proc ${R}/sys ${R}/dev`,
    `mount -t proc proc ${R}/proc`,
    `mount --rbind /sys ${R}/sys`,
    `mount --rbind /dev ${R}/dev`,
  ];
  for (const f of spec.files) {
    const target = `${R}${sq(f.path)}`;
    lines.push(`mkdir -p "$(dirname ${target})"`, `[ -e ${target} ] || touch ${target}`);
    lines.push(`mount --bind ${sq(f.source)} ${target}`, `mount -o remount,bind,ro ${target}`);
  }
  // Mount points first, while the layers are writable; then the layers read-only (per mount: `bind,ro` never
  // touches a superblock); then the volumes on top, keeping their own access.
  for (const v of spec.volumes) lines.push(`mkdir -p ${R}${sq(v.containerPath)}`);
  lines.push(`mkdir -p ${R}${sq(spec.workingDir)}`);
  if (spec.readonlyRoot) {
    lines.push(`for n in $LAYERS; do mount -o remount,bind,ro ${R}/"$n"; done`, `mount -o remount,bind,ro ${R}`);
  }
  for (const v of spec.volumes) {
    const target = `${R}${sq(v.containerPath)}`;
    lines.push(`mount --bind ${sq(v.hostPath)} ${target}`);
    if (v.readOnly) lines.push(`mount -o remount,bind,ro ${target}`);
  }
  const envArgs = Object.entries(spec.env).map(([k, v]) => sq(`${k}=${v}`));
  const asUser =
    spec.user && spec.user.uid !== 0
      ? ['/usr/bin/setpriv', `--reuid=${spec.user.uid}`, `--regid=${spec.user.gid}`, '--clear-groups', '--']
      : [];
  const exec = [
    'exec chroot',
    R,
    '/usr/bin/env -i',
    ...envArgs,
    ...asUser,
    '/bin/sh -c',
    sq('cd "$0" || exit 1; exec "$@"'),
    sq(spec.workingDir),
    ...spec.argv.map(sq),
  ];
  lines.push(exec.join(' '));
  return `${lines.join('\n')}\n`;
}
