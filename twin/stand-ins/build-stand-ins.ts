// Bundles the image stand-ins into single executable files (esbuild, as the agent image bundles bin/agent.ts), so a
// container sees them at their image paths through a bind mount.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

export interface StandInFiles {
  /** /usr/local/bin/aws-lambda-rie of the Lambda base images. */
  readonly lambdaRie: string;
  /** /var/runtime/bootstrap of a Lambda base image, by runtime family. */
  readonly runtimeBootstrap: { readonly python: string; readonly node: string };
  /** /usr/local/bin/aws of the AWS CLI image. */
  readonly awsCli: string;
}

export async function buildStandIns(repoRoot: string, outdir: string): Promise<StandInFiles> {
  fs.mkdirSync(outdir, { recursive: true });
  const here = path.join(repoRoot, 'twin', 'stand-ins');
  const common = {
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    format: 'cjs' as const,
    banner: { js: `#!${process.execPath}` },
    external: ['better-sqlite3'],
    logLevel: 'warning' as const,
  };
  const out = (name: string) => path.join(outdir, name);
  await build({ ...common, entryPoints: [path.join(here, 'aws-lambda-rie.ts')], outfile: out('aws-lambda-rie') });
  for (const [family, runtime] of [
    ['python', 'python3.12'],
    ['node', 'nodejs22.x'],
  ] as const) {
    await build({
      ...common,
      entryPoints: [path.join(here, 'lambda-runtime-bootstrap.ts')],
      outfile: out(`runtime-bootstrap-${family}`),
      define: {
        TWIN_LAMBDA_RUNTIME: JSON.stringify(runtime),
        TWIN_BOOTSTRAP_DIR: JSON.stringify(path.join(repoRoot, 'lib', 'runtime', 'bootstrap')),
      },
    });
  }
  fs.copyFileSync(path.join(here, 'aws-cli.sh'), out('aws'));
  const files: StandInFiles = {
    lambdaRie: out('aws-lambda-rie'),
    runtimeBootstrap: { python: out('runtime-bootstrap-python'), node: out('runtime-bootstrap-node') },
    awsCli: out('aws'),
  };
  for (const f of [files.lambdaRie, files.runtimeBootstrap.python, files.runtimeBootstrap.node, files.awsCli]) {
    fs.chmodSync(f, 0o755);
  }
  return files;
}
