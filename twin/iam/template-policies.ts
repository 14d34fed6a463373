// The IAM roles of the synthesized template with their identity policies, and the resource policies of its buckets
// and queues, resolved over the twin's physical names.
import { resourcesOfType } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';
import type { NamedPolicy, PolicyDocument } from './policy-evaluator';

export interface TemplateRole {
  readonly logicalId: string;
  readonly arn: string;
  readonly policies: readonly NamedPolicy[];
  /** AWS managed policies attached by ARN: their content is not in the template, so the twin does not apply them. */
  readonly managedPolicyArns: readonly string[];
}

/** Every role of the template with the inline, attached and standalone policies that apply to it. */
export function templateRoles(stack: DeployedStack, only?: readonly string[]): Map<string, TemplateRole> {
  const roles = new Map<string, TemplateRole>();
  const standalone = [
    ...resourcesOfType(stack.template, 'AWS::IAM::Policy'),
    ...resourcesOfType(stack.template, 'AWS::IAM::ManagedPolicy'),
  ];
  for (const [logicalId, resource] of resourcesOfType(stack.template, 'AWS::IAM::Role')) {
    if (only && !only.includes(logicalId)) continue;
    const props = stack.properties(logicalId);
    const policies: NamedPolicy[] = [];
    for (const inline of (props.Policies ?? []) as { PolicyName: string; PolicyDocument: PolicyDocument }[]) {
      policies.push({ name: `${logicalId}/${inline.PolicyName}`, document: inline.PolicyDocument });
    }
    for (const [policyId, policy] of standalone) {
      const roleRefs = ((policy.Properties?.Roles ?? []) as unknown[]).map((r) => JSON.stringify(r));
      if (!roleRefs.includes(JSON.stringify({ Ref: logicalId }))) continue;
      const document = stack.resolve(policy.Properties?.PolicyDocument, `Resources.${policyId}.PolicyDocument`);
      policies.push({ name: policyId, document: document as PolicyDocument });
    }
    void resource;
    roles.set(logicalId, {
      logicalId,
      arn: String(stack.getAtt(logicalId, 'Arn', `Resources.${logicalId}`)),
      policies,
      managedPolicyArns: ((props.ManagedPolicyArns ?? []) as unknown[]).map(String),
    });
  }
  return roles;
}

/** A resource policy with the ARNs it governs (a bucket and its objects, or queues). */
export interface ResourcePolicy {
  readonly policy: NamedPolicy;
  /** ARN prefixes: a request's resource is governed when it equals one or starts with `<arn>/`. */
  readonly governs: readonly string[];
}

export function templateResourcePolicies(stack: DeployedStack): ResourcePolicy[] {
  const out: ResourcePolicy[] = [];
  for (const [logicalId] of resourcesOfType(stack.template, 'AWS::S3::BucketPolicy')) {
    const props = stack.properties(logicalId);
    const bucket = String(props.Bucket);
    out.push({
      policy: { name: `${logicalId} (bucket policy)`, document: props.PolicyDocument as PolicyDocument },
      governs: [`arn:${stack.env.partition}:s3:::${bucket}`],
    });
  }
  for (const [logicalId] of resourcesOfType(stack.template, 'AWS::SQS::QueuePolicy')) {
    const props = stack.properties(logicalId);
    const queues = ((props.Queues ?? []) as string[]).map((url) => {
      const parts = new URL(url).pathname.split('/').filter(Boolean);
      return stack.arn('sqs', parts[parts.length - 1] ?? '', { account: parts[parts.length - 2] });
    });
    out.push({
      policy: { name: `${logicalId} (queue policy)`, document: props.PolicyDocument as PolicyDocument },
      governs: queues,
    });
  }
  return out;
}

export function policiesGoverning(policies: readonly ResourcePolicy[], resource: string): NamedPolicy[] {
  return policies
    .filter((p) => p.governs.some((arn) => resource === arn || resource.startsWith(`${arn}/`)))
    .map((p) => p.policy);
}
