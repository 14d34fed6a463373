// Synthesizes the grid app (the twin app: bin/app.ts's stack plus a client role) with `cdk synth`, as `cdk deploy`
// does before it deploys, and finds the stack's template and asset manifest in the cloud assembly.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TwinTemplateError } from './errors';

export interface SynthOptions {
  /** Repository root (holds cdk.json, whose feature flags apply as for the real app). */
  readonly repoRoot: string;
  readonly outdir: string;
  /** `-c key=value` pairs. */
  readonly context: Readonly<Record<string, string>>;
  readonly onOutput?: (line: string) => void;
}

export interface SynthResult {
  readonly outdir: string;
  readonly stackName: string;
  readonly templateFile: string;
  readonly assetManifestFile: string;
  /** cdk synth's own output (warnings, bundling lines). */
  readonly log: string;
}

export async function synthesize(options: SynthOptions): Promise<SynthResult> {
  fs.mkdirSync(options.outdir, { recursive: true });
  const cdk = path.join(options.repoRoot, 'node_modules', '.bin', 'cdk');
  const tsx = path.join(options.repoRoot, 'node_modules', '.bin', 'tsx');
  const app = `${tsx} ${path.join(options.repoRoot, 'twin', 'twin-app.ts')}`;
  const args = ['synth', '--app', app, '--output', options.outdir, '--quiet', '--no-notices', '--no-version-reporting'];
  for (const [k, v] of Object.entries(options.context)) args.push('--context', `${k}=${v}`);
  let log = '';
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(cdk, args, {
      cwd: options.repoRoot,
      // No AWS credentials: an environment-agnostic template (account and AZs resolved at deploy time, by the twin),
      // as `cdk synth` makes it before any context lookup.
      env: withoutAccount({ ...process.env, AWS_EC2_METADATA_DISABLED: 'true' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      log += text;
      for (const line of text.split('\n')) if (line.trim()) options.onOutput?.(line);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) {
    throw new TwinTemplateError(
      `cdk synth failed (exit ${code}): this is what \`cdk deploy\` would stop on\n${log.trim()}`,
    );
  }
  return { ...readAssembly(options.outdir), log };
}

/** The one CloudFormation stack of a cloud assembly, with its template and asset manifest. */
export function readAssembly(outdir: string): Omit<SynthResult, 'log'> {
  const manifest = JSON.parse(fs.readFileSync(path.join(outdir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<
      string,
      { type: string; properties?: { templateFile?: string; file?: string }; dependencies?: string[] }
    >;
  };
  const stacks = Object.entries(manifest.artifacts).filter(([, a]) => a.type === 'aws:cloudformation:stack');
  if (stacks.length !== 1)
    throw new TwinTemplateError(`the cloud assembly holds ${stacks.length} stacks; the twin runs one`);
  const [stackName, stack] = stacks[0]!;
  const assets = (stack.dependencies ?? [])
    .map((d) => manifest.artifacts[d])
    .find((a) => a?.type === 'cdk:asset-manifest');
  if (!stack.properties?.templateFile || !assets?.properties?.file) {
    throw new TwinTemplateError(`stack ${stackName} has no template or asset manifest in ${outdir}`);
  }
  return {
    outdir,
    stackName,
    templateFile: path.join(outdir, stack.properties.templateFile),
    assetManifestFile: path.join(outdir, assets.properties.file),
  };
}

function withoutAccount(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy.CDK_DEFAULT_ACCOUNT;
  return copy;
}
