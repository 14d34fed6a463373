// The compute plane's container images: the agent (built from docker/agent) and public images via an ECR cache.
import * as path from 'node:path';
import { IgnoreMode, Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { packageRoot } from './repo-paths';

/** The AWS CLI image the init container runs (fetches and unpacks the worker zip). */
export const INIT_IMAGE = 'public.ecr.aws/aws-cli/aws-cli:2.22.26';

/** The agent image built from `docker/agent/Dockerfile` at deploy time (synth only stages the files). */
export function agentImageFromRepository(): ecs.ContainerImage {
  return ecs.ContainerImage.fromAsset(packageRoot(), {
    file: path.join('docker', 'agent', 'Dockerfile'),
    ignoreMode: IgnoreMode.DOCKER,
    exclude: ['*', '!package.json', '!package-lock.json', '!tsconfig.json', '!lib', '!bin', '!docker'],
  });
}

export interface PublicImageCacheProps {
  /**
   * ECR repository prefix of the pull-through cache rule (unique per account and region).
   * @default - derived from the construct's unique id
   */
  readonly repositoryPrefix?: string;
}

/**
 * An ECR pull-through cache for `public.ecr.aws`, so tasks in private subnets without a NAT can pull the Lambda
 * base images and the AWS CLI image through the ECR endpoints.
 */
export class PublicImageCache extends Construct {
  /** The repository prefix images are pulled under. */
  readonly repositoryPrefix: string;

  constructor(scope: Construct, id: string, props: PublicImageCacheProps = {}) {
    super(scope, id);
    this.repositoryPrefix = props.repositoryPrefix ?? `htcgrid-${this.node.addr.slice(0, 8)}`;
    new ecr.CfnPullThroughCacheRule(this, 'Rule', {
      ecrRepositoryPrefix: this.repositoryPrefix,
      upstreamRegistryUrl: 'public.ecr.aws',
    });
  }

  /** The cached URI of a `public.ecr.aws/...` image. */
  imageUri(publicImage: string): string {
    const stripped = publicImage.replace(/^public\.ecr\.aws\//, '');
    const stack = Stack.of(this);
    return `${stack.account}.dkr.ecr.${stack.region}.${stack.urlSuffix}/${this.repositoryPrefix}/${stripped}`;
  }

  /** A container image for a `public.ecr.aws/...` image through the cache. */
  image(publicImage: string): ecs.ContainerImage {
    return ecs.ContainerImage.fromRegistry(this.imageUri(publicImage));
  }

  /** What an ECS execution role needs to pull (and on first use, import) images through the cache. */
  grantPull(grantee: iam.IGrantable): void {
    const stack = Stack.of(this);
    const repos = stack.formatArn({
      service: 'ecr',
      resource: 'repository',
      resourceName: `${this.repositoryPrefix}/*`,
    });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [
          'ecr:BatchGetImage',
          'ecr:GetDownloadUrlForLayer',
          'ecr:BatchCheckLayerAvailability',
          'ecr:BatchImportUpstreamImage',
          'ecr:CreateRepository',
        ],
        resources: [repos],
      }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
    );
  }
}
