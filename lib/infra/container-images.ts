// Public container images (the Lambda base images, the AWS CLI) for tasks without internet access: an ECR cache.
import { Stack } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * The AWS CLI image the init container runs (fetches and unpacks the worker zip). Pinned by tag, not digest: this
 * machine-independent template cannot look digests up, and a digest would freeze out the image's security
 * rebuilds; pass `initImage` (e.g. `ContainerImage.fromRegistry('...@sha256:...')`) to pin one.
 */
export const INIT_IMAGE = 'public.ecr.aws/aws-cli/aws-cli:2.22.26';

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
  grantPull(grantee: iam.IGrantable): iam.Grant {
    const stack = Stack.of(this);
    const repos = stack.formatArn({
      service: 'ecr',
      resource: 'repository',
      resourceName: `${this.repositoryPrefix}/*`,
    });
    const pull = iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'ecr:BatchGetImage',
        'ecr:GetDownloadUrlForLayer',
        'ecr:BatchCheckLayerAvailability',
        'ecr:BatchImportUpstreamImage',
        'ecr:CreateRepository',
      ],
      resourceArns: [repos],
    });
    return pull.combine(
      iam.Grant.addToPrincipal({ grantee, actions: ['ecr:GetAuthorizationToken'], resourceArns: ['*'] }),
    );
  }
}
