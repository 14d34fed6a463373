// Assets as `cdk deploy` publishes them: the asset manifest's file assets uploaded by the CDK's asset publishing
// library (cdk-assets) into the bootstrap bucket (the file-publishing role assumed through STS, all against the emulators), then each Custom::CDKBucketDeployment
// copying its sources into its destination as the BucketDeployment handler does, under its own role.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import AdmZip from 'adm-zip';
import {
  CopyObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  CreateBucketCommand,
} from '@aws-sdk/client-s3';
import { TwinTemplateError } from '../errors';
import { resourcesOfType, text } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';
import type { DockerImageAsset } from '../ecs/images';

export interface AssetManifest {
  readonly files: Record<
    string,
    {
      source: { path: string; packaging?: string };
      destinations: Record<string, { bucketName: string; objectKey: string }>;
    }
  >;
  readonly dockerImages?: Record<
    string,
    {
      source: { directory: string; dockerFile?: string };
      destinations: Record<string, { repositoryName: string; imageTag: string }>;
    }
  >;
}

export function readAssetManifest(file: string): AssetManifest {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as AssetManifest;
}

/** `${AWS::AccountId}`-style placeholders, as cdk-assets replaces them. */
export function replacePlaceholders(text: string, stack: DeployedStack): string {
  return text
    .replace(/\$\{AWS::AccountId\}/g, stack.env.account)
    .replace(/\$\{AWS::Region\}/g, stack.env.region)
    .replace(/\$\{AWS::Partition\}/g, stack.env.partition);
}

export function dockerImageAssets(
  manifest: AssetManifest,
  manifestDir: string,
  stack: DeployedStack,
): DockerImageAsset[] {
  return Object.entries(manifest.dockerImages ?? {}).flatMap(([id, asset]) =>
    Object.values(asset.destinations).map((d) => ({
      id,
      directory: path.join(manifestDir, asset.source.directory),
      dockerFile: asset.source.dockerFile ?? 'Dockerfile',
      repositoryName: replacePlaceholders(d.repositoryName, stack),
      imageTag: d.imageTag,
    })),
  );
}

export interface PublishOptions {
  readonly manifestFile: string;
  readonly stack: DeployedStack;
  /** Admin client straight to the emulator (the bootstrap stack's bucket is `cdk bootstrap`'s, not the template's). */
  readonly adminS3: S3Client;
  /** Environment for cdk-assets: credentials of the deploying user, S3 and STS endpoints. */
  readonly env: Readonly<Record<string, string>>;
  readonly repoRoot: string;
  readonly onOutput?: (line: string) => void;
}

/** Publishes every file asset with the CDK's asset publishing library; returns the bootstrap buckets it wrote to. */
export async function publishFileAssets(options: PublishOptions): Promise<string[]> {
  const manifest = readAssetManifest(options.manifestFile);
  const buckets = new Set<string>();
  const selectors: string[] = [];
  for (const [id, asset] of Object.entries(manifest.files)) {
    selectors.push(id);
    for (const d of Object.values(asset.destinations)) buckets.add(replacePlaceholders(d.bucketName, options.stack));
  }
  // What `cdk bootstrap` creates: the staging bucket.
  for (const bucket of buckets) await options.adminS3.send(new CreateBucketCommand({ Bucket: bucket }));
  const tsx = path.join(options.repoRoot, 'node_modules', '.bin', 'tsx');
  const main = path.join(options.repoRoot, 'twin', 'aws', 'publish-assets-main.ts');
  let log = '';
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(tsx, [main, options.manifestFile, ...selectors], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (c: Buffer) => {
      log += c.toString();
      for (const line of c.toString().split('\n')) if (line.trim()) options.onOutput?.(line);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new TwinTemplateError(`publishing the file assets failed (exit ${code}):\n${log.trim()}`);
  return [...buckets];
}

/**
 * Runs each Custom::CDKBucketDeployment of the template with the S3 client of its handler's role: the zip sources
 * copied (Extract: false) or unpacked (Extract: true) under DestinationBucketKeyPrefix; defines its SourceObjectKeys.
 */
export async function runBucketDeployments(
  stack: DeployedStack,
  s3ForRole: (roleLogicalId: string) => S3Client,
): Promise<string[]> {
  const done: string[] = [];
  for (const [logicalId, resource] of resourcesOfType(stack.template, 'Custom::CDKBucketDeployment')) {
    const props = stack.properties(logicalId);
    const functionId = serviceTokenFunction(resource.Properties?.ServiceToken);
    const roleArn = (stack.template.Resources[functionId]?.Properties?.Role ?? {}) as {
      'Fn::GetAtt'?: [string, string];
    };
    const roleId = roleArn['Fn::GetAtt']?.[0];
    if (!roleId) throw new TwinTemplateError(`${logicalId}: cannot find the role of its handler ${functionId}`);
    const s3 = s3ForRole(roleId);
    const sourceBuckets = props.SourceBucketNames as string[];
    const sourceKeys = props.SourceObjectKeys as string[];
    const bucket = String(props.DestinationBucketName);
    const prefix = text(props.DestinationBucketKeyPrefix ?? '');
    const extract = props.Extract === undefined ? true : text(props.Extract) === 'true';
    const keys: string[] = [];
    for (let i = 0; i < sourceKeys.length; i++) {
      const source = { bucket: sourceBuckets[i]!, key: sourceKeys[i]! };
      const name = path.posix.basename(source.key);
      keys.push(name);
      if (!extract) {
        await s3.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: `${prefix}${name}`,
            CopySource: `${source.bucket}/${source.key}`,
          }),
        );
        continue;
      }
      const zipped = await s3.send(new GetObjectCommand({ Bucket: source.bucket, Key: source.key }));
      const zip = new AdmZip(Buffer.from(await zipped.Body!.transformToByteArray()));
      for (const entry of zip.getEntries()) {
        if (entry.isDirectory) continue;
        await s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${entry.entryName}`, Body: entry.getData() }),
        );
      }
    }
    stack.define(logicalId, {
      ref: `aws.cdk.s3deployment.${logicalId}`,
      attributes: { SourceObjectKeys: keys, DestinationBucketArn: `arn:${stack.env.partition}:s3:::${bucket}` },
    });
    done.push(`${logicalId}: ${keys.map((k) => `s3://${bucket}/${prefix}${k}`).join(', ')}`);
  }
  return done;
}

function serviceTokenFunction(token: unknown): string {
  const getAtt = (token as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt'];
  if (!getAtt)
    throw new TwinTemplateError(
      `a custom resource's ServiceToken is not Fn::GetAtt of a function: ${JSON.stringify(token)}`,
    );
  return getAtt[0];
}
