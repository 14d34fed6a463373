// What `Ref` and `Fn::GetAtt` return for each resource type the twin names, as CloudFormation documents them.
import { createHash } from 'node:crypto';
import type { CfnResource } from './cfn-template';
import type { DeployedStack, PhysicalResource } from './deployed-stack';

export interface NamingOptions {
  /** Origin of queue URLs (the SQS endpoint every caller reaches). */
  readonly sqsOrigin: string;
  /** `FunctionUrl` of each `AWS::Lambda::Url`, by logical id: the twin's front for it. */
  readonly functionUrls?: Readonly<Record<string, string>>;
}

/**
 * Names every resource of the template (deterministically, from the stack name and logical id, as CloudFormation
 * generates names) without creating anything. Custom resources are left to whoever runs them.
 */
export function nameResources(stack: DeployedStack, options: NamingOptions): void {
  for (const [logicalId, resource] of Object.entries(stack.template.Resources)) {
    const physical = physicalResource(stack, logicalId, resource, options);
    if (physical) stack.define(logicalId, physical);
  }
}

function explicitName(resource: CfnResource, key: string): string | undefined {
  const v = resource.Properties?.[key];
  return typeof v === 'string' ? v : undefined;
}

function physicalResource(
  stack: DeployedStack,
  logicalId: string,
  resource: CfnResource,
  options: NamingOptions,
): PhysicalResource | undefined {
  const { partition, region, account } = stack.env;
  const named = (key: string, max: number, lower = false) =>
    explicitName(resource, key) ?? stack.generatedName(logicalId, max, lower);
  switch (resource.Type) {
    case 'AWS::DynamoDB::Table': {
      const name = named('TableName', 255);
      return { ref: name, attributes: { Arn: stack.arn('dynamodb', `table/${name}`) } };
    }
    case 'AWS::SQS::Queue': {
      const name = named('QueueName', 80);
      const url = `${options.sqsOrigin}/${account}/${name}`;
      return { ref: url, attributes: { Arn: stack.arn('sqs', name), QueueName: name, QueueUrl: url } };
    }
    case 'AWS::S3::Bucket': {
      const name = named('BucketName', 63, true);
      return {
        ref: name,
        attributes: {
          Arn: `arn:${partition}:s3:::${name}`,
          DomainName: `${name}.s3.${stack.env.urlSuffix}`,
          RegionalDomainName: `${name}.s3.${region}.${stack.env.urlSuffix}`,
          DualStackDomainName: `${name}.s3.dualstack.${region}.${stack.env.urlSuffix}`,
        },
      };
    }
    case 'AWS::IAM::Role': {
      const name = named('RoleName', 64);
      return {
        ref: name,
        attributes: { Arn: `arn:${partition}:iam::${account}:role/${name}`, RoleId: `AROA${hash(name, 17)}` },
      };
    }
    case 'AWS::IAM::Policy':
      return { ref: named('PolicyName', 128), attributes: {} };
    case 'AWS::Logs::LogGroup': {
      const name = named('LogGroupName', 512);
      return { ref: name, attributes: { Arn: stack.arn('logs', `log-group:${name}:*`) } };
    }
    case 'AWS::Lambda::Function': {
      const name = named('FunctionName', 64);
      return { ref: name, attributes: { Arn: stack.arn('lambda', `function:${name}`) } };
    }
    case 'AWS::Lambda::Url': {
      const url = options.functionUrls?.[logicalId];
      if (!url) return undefined;
      const target = resource.Properties?.TargetFunctionArn as { 'Fn::GetAtt'?: [string, string] } | undefined;
      const fn = target?.['Fn::GetAtt']?.[0];
      const fnResource = fn ? stack.template.Resources[fn] : undefined;
      const functionArn =
        fn && fnResource
          ? stack.arn('lambda', `function:${explicitName(fnResource, 'FunctionName') ?? stack.generatedName(fn, 64)}`)
          : '';
      return { ref: functionArn, attributes: { FunctionUrl: url, FunctionArn: functionArn } };
    }
    case 'AWS::Lambda::LayerVersion': {
      const name = named('LayerName', 64);
      return { ref: stack.arn('lambda', `layer:${name}:1`), attributes: {} };
    }
    case 'AWS::ECS::Cluster': {
      const name = named('ClusterName', 255);
      return { ref: name, attributes: { Arn: stack.arn('ecs', `cluster/${name}`) } };
    }
    case 'AWS::ECS::TaskDefinition': {
      const family = named('Family', 255);
      return {
        ref: stack.arn('ecs', `task-definition/${family}:1`),
        attributes: { TaskDefinitionArn: stack.arn('ecs', `task-definition/${family}:1`) },
      };
    }
    case 'AWS::ECS::Service': {
      const name = named('ServiceName', 255);
      const arn = stack.arn('ecs', `service/${name}`);
      return { ref: arn, attributes: { Name: name, ServiceArn: arn } };
    }
    case 'AWS::Events::Rule': {
      const name = named('Name', 64);
      return { ref: name, attributes: { Arn: stack.arn('events', `rule/${name}`) } };
    }
    case 'AWS::CloudWatch::Alarm': {
      const name = named('AlarmName', 255);
      return { ref: name, attributes: { Arn: stack.arn('cloudwatch', `alarm:${name}`) } };
    }
    case 'AWS::ApplicationAutoScaling::ScalingPolicy': {
      const name = named('PolicyName', 256);
      return {
        ref: stack.arn('autoscaling', `scalingPolicy:${hash(logicalId, 8)}:resource/ecs/${name}`),
        attributes: {},
      };
    }
    case 'AWS::ApplicationAutoScaling::ScalableTarget':
      return { ref: `${logicalId}|twin`, attributes: {} };
    default:
      if (resource.Type.startsWith('Custom::') || resource.Type === 'AWS::CloudFormation::CustomResource')
        return undefined;
      // Networking and other resources the twin does not run: stable opaque ids, for references it does not follow.
      return opaque(logicalId, resource.Type);
  }
}

function hash(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length).toUpperCase();
}

function opaque(logicalId: string, type: string): PhysicalResource {
  const prefix = type.split('::')[2]?.toLowerCase() ?? 'res';
  const id = `${prefix}-${hash(logicalId, 17).toLowerCase()}`;
  const attributes = new Proxy({}, { get: (_t, attr) => `${id}.${String(attr)}` });
  return { ref: id, attributes };
}
