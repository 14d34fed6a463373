// Container images mapped to local stand-ins (no container engine here): what each image would put in the container
// (files at image paths, ENV, WORKDIR, ENTRYPOINT, USER), from the image's own definition where the twin can read it.
import fs from 'node:fs';
import path from 'node:path';
import { TwinTemplateError } from '../errors';
import type { StandInFiles } from '../stand-ins/build-stand-ins';

export interface ImageStandIn {
  /** What the image is and what stands in for it, for the run's report. */
  readonly description: string;
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
  readonly entryPoint: readonly string[];
  readonly command: readonly string[];
  /** The image's USER (the task definition's `User` wins). */
  readonly user?: string;
  /** Files the image holds, bind mounted at their image paths. */
  readonly files: readonly { readonly path: string; readonly source: string }[];
  /** Rewrites the container's command line where an image path stands for a host file (the agent bundle). */
  readonly argv?: (argv: readonly string[]) => string[];
}

/** A `cdk:asset-manifest` docker image entry. */
export interface DockerImageAsset {
  readonly id: string;
  readonly directory: string;
  readonly dockerFile: string;
  readonly repositoryName: string;
  readonly imageTag: string;
}

const DEBIAN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ImageContext {
  readonly repoRoot: string;
  readonly standIns: StandInFiles;
  readonly dockerAssets: readonly DockerImageAsset[];
}

/** The stand-in for an image URI of the template (resolved). */
export function imageStandIn(image: string, ctx: ImageContext): ImageStandIn {
  const lambda = /\/lambda\/(python|nodejs|provided):([^/@]+)$/.exec(image);
  if (lambda) return lambdaBaseImage(lambda[1]!, lambda[2]!, ctx);
  if (/\/aws-cli\/aws-cli(:[^/]+)?$/.test(image)) {
    return {
      description: `${image}: Debian's AWS CLI v2 (/usr/bin/aws) behind /usr/local/bin/aws`,
      env: { PATH: DEBIAN_PATH },
      workingDir: '/aws',
      entryPoint: ['/usr/local/bin/aws'],
      command: [],
      files: [{ path: '/usr/local/bin/aws', source: ctx.standIns.awsCli }],
    };
  }
  const asset = ctx.dockerAssets.find((a) => image.endsWith(`/${a.repositoryName}:${a.imageTag}`));
  if (asset) return agentImage(image, asset, ctx);
  throw new TwinTemplateError(
    `no stand-in for image ${image}: the twin runs the Lambda base images, the AWS CLI image and the agent image`,
  );
}

function lambdaBaseImage(language: string, tag: string, ctx: ImageContext): ImageStandIn {
  const files = [{ path: '/usr/local/bin/aws-lambda-rie', source: ctx.standIns.lambdaRie }];
  if (language === 'python')
    files.push({ path: '/var/runtime/bootstrap', source: ctx.standIns.runtimeBootstrap.python });
  if (language === 'nodejs') files.push({ path: '/var/runtime/bootstrap', source: ctx.standIns.runtimeBootstrap.node });
  return {
    description: `public.ecr.aws/lambda/${language}:${tag}: lambda-rie stand-in${language === 'provided' ? '' : ` and the ${language} runtime over lib/runtime/local`}`,
    // The ENV of the Lambda base images.
    env: {
      LANG: 'en_US.UTF-8',
      TZ: ':/etc/localtime',
      PATH: '/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin',
      LD_LIBRARY_PATH: '/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib',
      LAMBDA_TASK_ROOT: '/var/task',
      LAMBDA_RUNTIME_DIR: '/var/runtime',
    },
    workingDir: '/var/task',
    entryPoint: ['/lambda-entrypoint.sh'],
    command: [],
    files,
  };
}

/**
 * The agent image: built from the asset's Dockerfile, whose last stage the twin reads (ENV, WORKDIR, USER,
 * ENTRYPOINT). Its entrypoint script (`<WORKDIR>/agent.js`, the esbuild bundle of bin/agent.ts) stands for the compiled
 * agent, dist/bin/agent.js, run by this machine's node.
 */
function agentImage(image: string, asset: DockerImageAsset, ctx: ImageContext): ImageStandIn {
  const dockerfile = fs.readFileSync(path.join(asset.directory, asset.dockerFile), 'utf8');
  const stage = lastStage(dockerfile);
  const compiled = path.join(ctx.repoRoot, 'dist', 'bin', 'agent.js');
  if (!fs.existsSync(compiled)) {
    throw new TwinTemplateError(`${compiled} is missing: build the package first (npm run build)`);
  }
  const workingDir = stage.workdir ?? '/';
  return {
    description: `${image} (docker asset ${asset.id.slice(0, 12)}, ${asset.dockerFile}): node ${path.relative(ctx.repoRoot, compiled)}`,
    env: { PATH: DEBIAN_PATH, ...stage.env },
    workingDir,
    entryPoint: stage.entrypoint,
    command: stage.cmd,
    user: stage.user,
    files: [],
    argv: (argv) =>
      argv.map((a) => (path.posix.resolve(workingDir, a) === path.posix.join(workingDir, 'agent.js') ? compiled : a)),
  };
}

interface DockerStage {
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  entrypoint: string[];
  cmd: string[];
}

/** ENV, WORKDIR, USER, ENTRYPOINT and CMD of a Dockerfile's last stage (exec form or shell form). */
export function lastStage(dockerfile: string): DockerStage {
  const lines = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  let stage: DockerStage = { env: {}, entrypoint: [], cmd: [] };
  for (const raw of lines) {
    const line = raw.trim();
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const [, instruction = '', rest = ''] = m;
    switch (instruction.toUpperCase()) {
      case 'FROM':
        stage = { env: {}, entrypoint: [], cmd: [] };
        break;
      case 'ENV':
        for (const pair of rest.match(/(\w+)=("[^"]*"|\S+)/g) ?? []) {
          const eq = pair.indexOf('=');
          stage.env[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"|"$/g, '');
        }
        break;
      case 'WORKDIR':
        stage.workdir = path.posix.resolve(stage.workdir ?? '/', rest.trim());
        break;
      case 'USER':
        stage.user = rest.trim();
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = execForm(rest);
        stage.cmd = [];
        break;
      case 'CMD':
        stage.cmd = execForm(rest);
        break;
      default:
        break;
    }
  }
  return stage;
}

function execForm(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as string[];
  return ['/bin/sh', '-c', trimmed];
}
