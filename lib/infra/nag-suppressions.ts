// cdk-nag suppressions for resources aws-cdk-lib creates on its own (singleton handlers), each with a reason.
import type { Stack } from 'aws-cdk-lib';
import { NagSuppressions } from 'cdk-nag';

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
          {
            id: 'AwsSolutions-IAM4',
            reason: 'aws-cdk-lib singleton handler: AWSLambdaBasicExecutionRole only lets it write its own logs.',
            appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
          },
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
