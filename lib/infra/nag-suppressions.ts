// cdk-nag suppressions, each with its reason: for resources aws-cdk-lib creates on its own, and for the compute plane.
import type { Stack } from 'aws-cdk-lib';
import { NagSuppressions, type NagPackSuppression } from 'cdk-nag';

/** A Lambda function's AWSLambdaBasicExecutionRole (its own logs only), suppressed with `reason`. */
export function basicExecutionRole(reason: string): NagPackSuppression {
  return {
    id: 'AwsSolutions-IAM4',
    reason,
    appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
  };
}

/** The agent's role (ECS task role or EKS pod role): its resource wildcards, each scoped. */
function scopedWildcards(): NagPackSuppression {
  return {
    id: 'AwsSolutions-IAM5',
    reason:
      'Only resource wildcards, each scoped: data-plane objects under the grid prefix (data/*), the task ' +
      "table's indexes (index/*), the pull-through cache repositories (<prefix>/*), the clients' completion " +
      'notice queues (<grid prefix>*: SendMessage only); ecr:GetAuthorizationToken has no resource-level ' +
      'permissions.',
  };
}

/** The agent task definition's findings: configuration in the environment, and scoped resource wildcards. */
export function taskDefinitionSuppressions(): NagPackSuppression[] {
  return [
    {
      id: 'AwsSolutions-ECS2',
      reason: 'Environment variables carry only resource names and the grid configuration; no secrets.',
    },
    scopedWildcards(),
  ];
}

/** The EC2 capacity's findings: resources aws-cdk-lib creates for the ECS-managed Auto Scaling group. */
export function ec2CapacitySuppressions(): NagPackSuppression[] {
  return [
    {
      id: 'AwsSolutions-AS3',
      reason: 'ECS managed scaling owns the group; its scaling is visible in the ECS and Auto Scaling consoles.',
    },
    {
      id: 'AwsSolutions-L1',
      reason: 'The ECS instance drain hook function is created by aws-cdk-lib, which chooses its runtime.',
    },
    basicExecutionRole(
      'The drain hook function (aws-cdk-lib): AWSLambdaBasicExecutionRole only lets it write its own logs.',
    ),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'The ECS container instance role and drain hook (aws-cdk-lib): ecs:Submit*/Poll/StartTelemetrySession, ' +
        'ECR token and Auto Scaling lifecycle calls have no resource-level permissions.',
    },
    {
      id: 'AwsSolutions-SNS3',
      reason: 'The drain hook topic (aws-cdk-lib) is published to by Auto Scaling lifecycle hooks only, inside AWS.',
    },
  ];
}

/** The EKS plane's findings: its roles' scoped wildcards, a new cluster's roles, the kubectl provider of aws-cdk-lib. */
export function eksPlaneSuppressions(): NagPackSuppression[] {
  return [...eksClusterSuppressions(), scopedWildcards()];
}

/** A new EKS cluster's findings (its AWS managed policies) and the kubectl provider's (aws-cdk-lib). */
function eksClusterSuppressions(): NagPackSuppression[] {
  const managed = (name: string): string => `Policy::arn:<AWS::Partition>:iam::aws:policy/${name}`;
  return [
    {
      id: 'AwsSolutions-IAM4',
      reason:
        'EKS Auto Mode needs these AWS managed policies on its cluster role (EKS runs the nodes, storage, load ' +
        'balancing and networking for the cluster) and node role (join the cluster, pull images); AWS keeps them ' +
        'current with the service. CloudWatchAgentServerPolicy is what the CloudWatch Observability add-on documents.',
      appliesTo: [
        'AmazonEKSClusterPolicy',
        'AmazonEKSComputePolicy',
        'AmazonEKSBlockStoragePolicy',
        'AmazonEKSLoadBalancingPolicy',
        'AmazonEKSNetworkingPolicy',
        'AmazonEKSWorkerNodePolicy',
        'AmazonEC2ContainerRegistryReadOnly',
        'CloudWatchAgentServerPolicy',
      ].map(managed),
    },
    {
      id: 'AwsSolutions-IAM4',
      reason:
        "The kubectl provider (aws-cdk-lib): its functions' logs and VPC network interfaces, and reading the " +
        'kubectl image layers; the conditional policy is its ECR Public read access, added by aws-cdk-lib.',
      appliesTo: [
        managed('service-role/AWSLambdaBasicExecutionRole'),
        managed('service-role/AWSLambdaVPCAccessExecutionRole'),
        { regex: '/^Policy::\\{"Fn::If":\\[".*HasEcrPublic.*/' },
      ],
    },
    {
      id: 'AwsSolutions-L1',
      reason: 'The kubectl provider function is created by aws-cdk-lib, which chooses its runtime.',
    },
  ];
}

/** Suppress findings on CDK-owned singleton functions (bucket deployment, auto-delete objects, log retention). */
export function suppressCdkInternals(stack: Stack): void {
  for (const child of stack.node.children) {
    const id = child.node.id;
    if (
      id.startsWith('Custom::CDKBucketDeployment') ||
      id.startsWith('Custom::S3AutoDeleteObjects') ||
      id.startsWith('AWS679f53fac002430cb0da5b7982bd2287')
    ) {
      NagSuppressions.addResourceSuppressions(
        child,
        [
          basicExecutionRole(
            'aws-cdk-lib singleton handler: AWSLambdaBasicExecutionRole only lets it write its own logs.',
          ),
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'aws-cdk-lib singleton handler: CDK scopes its S3 actions to the asset object and the destination bucket.',
          },
          {
            id: 'AwsSolutions-L1',
            reason: 'aws-cdk-lib singleton handler: its runtime is chosen and updated by aws-cdk-lib.',
          },
        ],
        true,
      );
    }
  }
}
