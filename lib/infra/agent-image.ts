// The agent's container image: bin/agent.ts bundled by esbuild when the app is synthesized, next to a Dockerfile that
// only copies it onto Node.js 22, so `cdk deploy` builds it without npm, for the task's CPU architecture.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { buildSync } from 'esbuild';
import { BundlingError } from '../core/errors';
import { dockerPlatform, type CpuArchitecture } from './cpu-architecture';
import { packageRoot, sourceOrCompiled } from './repo-paths';

/** The agent's entry, relative to the package root (its compiled twin under dist/ when installed from npm). */
export const AGENT_ENTRY = 'bin/agent.ts';
/** The folder holding the agent's Dockerfile, relative to the package root. */
export const AGENT_DOCKER_DIR = path.join('docker', 'agent');

/**
 * Bundles the agent into `outDir` (`agent.js` and its source map): one CommonJS file with the AWS SDK inside, so the
 * image needs no node_modules. better-sqlite3 (local grids only) is never loaded in AWS and stays out. Output paths
 * are anchored in the package, so the same sources give the same bytes (and the same asset hash) on any machine.
 */
export function bundleAgent(outDir: string): void {
  const entry = sourceOrCompiled(AGENT_ENTRY);
  if (!entry) {
    throw new BundlingError(`the agent's entry ${AGENT_ENTRY} is missing from ${packageRoot()}`, {
      hint: 'build the package (npm run build) or pass agentImage',
    });
  }
  const anchor = path.join(packageRoot(), '.htcgrid-agent');
  const result = buildSync({
    absWorkingDir: packageRoot(),
    entryPoints: [entry],
    outfile: path.join(anchor, 'agent.js'),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    sourcemap: true,
    external: ['better-sqlite3'],
    write: false,
    logLevel: 'silent',
  });
  fs.mkdirSync(outDir, { recursive: true });
  for (const file of result.outputFiles)
    fs.writeFileSync(path.join(outDir, path.relative(anchor, file.path)), file.contents);
}

/**
 * The agent image for `architecture`, as a Docker image asset built at deploy time. Bundling is skipped, as CDK
 * skips asset bundling, for stacks the CLI is not deploying (`aws:cdk:bundling-stacks`): the asset then holds the
 * Dockerfile alone.
 */
export function agentImageAsset(scope: Construct, id: string, architecture: CpuArchitecture): ecs.ContainerImage {
  const dockerDir = path.join(packageRoot(), AGENT_DOCKER_DIR);
  if (!Stack.of(scope).bundlingRequired) {
    return ecs.ContainerImage.fromDockerImageAsset(
      new DockerImageAsset(scope, id, { directory: dockerDir, platform: dockerPlatform(architecture) }),
    );
  }
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-agent-image-'));
  fs.copyFileSync(path.join(dockerDir, 'Dockerfile'), path.join(staging, 'Dockerfile'));
  bundleAgent(staging);
  const asset = new DockerImageAsset(scope, id, { directory: staging, platform: dockerPlatform(architecture) });
  // The asset was copied into the cloud assembly, so the scratch folder can go (unless staging is off, as for SAM).
  if (!scope.node.tryGetContext(cxapi.DISABLE_ASSET_STAGING_CONTEXT)) fs.rmSync(staging, { recursive: true });
  return ecs.ContainerImage.fromDockerImageAsset(asset);
}
