// The agent's container image: bin/agent.ts bundled by esbuild when the app is synthesized, next to a Dockerfile that
// only copies it onto Node.js 22, so `cdk deploy` builds it without npm, for the task's CPU architecture.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DockerImageAsset } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { dockerPlatform, type CpuArchitecture } from './cpu-architecture';
import { bundleNodeEntry, withStagedFolder } from './node-bundle';
import { packageRoot } from './repo-paths';

/** The agent's entry, relative to the package root (its compiled twin under dist/ when installed from npm). */
export const AGENT_ENTRY = 'bin/agent.ts';
/** The folder holding the agent's Dockerfile, relative to the package root. */
export const AGENT_DOCKER_DIR = path.join('docker', 'agent');

/** Writes the agent (`agent.js` and its source map) into `outDir`, ready for the Dockerfile. */
export function bundleAgent(outDir: string): void {
  bundleNodeEntry(outDir, { entry: AGENT_ENTRY, outName: 'agent.js' });
}

/**
 * The agent image for `architecture`, as a Docker image asset built at deploy time. For stacks the CLI is not
 * bundling (`aws:cdk:bundling-stacks`) the asset holds the Dockerfile alone.
 */
export function agentDockerImage(scope: Construct, id: string, architecture: CpuArchitecture): DockerImageAsset {
  const dockerfile = path.join(packageRoot(), AGENT_DOCKER_DIR, 'Dockerfile');
  return withStagedFolder(
    scope,
    (dir) => {
      fs.copyFileSync(dockerfile, path.join(dir, 'Dockerfile'));
      bundleAgent(dir);
    },
    (dir) => fs.copyFileSync(dockerfile, path.join(dir, 'Dockerfile')),
    (dir) => new DockerImageAsset(scope, id, { directory: dir, platform: dockerPlatform(architecture) }),
  );
}

/** The agent image for `architecture` as an ECS container image (see `agentDockerImage`). */
export function agentImageAsset(scope: Construct, id: string, architecture: CpuArchitecture): ecs.ContainerImage {
  return ecs.ContainerImage.fromDockerImageAsset(agentDockerImage(scope, id, architecture));
}
