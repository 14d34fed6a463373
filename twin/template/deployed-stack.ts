// The deployed stack as the twin makes it: physical names, ARNs and attributes of each resource, and resolution of the
// template's intrinsic functions over them (what CloudFormation does at deploy time).
import { createHash } from 'node:crypto';
import { TwinTemplateError } from '../errors';
import { cdkPath, type CfnResource, type CfnTemplate } from './cfn-template';
import { resolveIntrinsics, resolveString, type IntrinsicContext } from './intrinsics';

/** The account and region the twin deploys into (fake: no AWS account is involved). */
export interface TwinEnvironment {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  readonly urlSuffix: string;
}

export const TWIN_ENVIRONMENT: TwinEnvironment = {
  account: '123456789012',
  region: 'us-east-1',
  partition: 'aws',
  urlSuffix: 'amazonaws.com',
};

/** A resource once created: what `Ref` returns and its `Fn::GetAtt` attributes. */
export interface PhysicalResource {
  readonly ref: unknown;
  readonly attributes: Readonly<Record<string, unknown>>;
}

export class DeployedStack implements IntrinsicContext {
  readonly pseudo: Readonly<Record<string, string>>;
  private readonly physical = new Map<string, PhysicalResource>();

  constructor(
    readonly template: CfnTemplate,
    readonly stackName: string,
    readonly env: TwinEnvironment = TWIN_ENVIRONMENT,
  ) {
    this.pseudo = {
      'AWS::AccountId': env.account,
      'AWS::Region': env.region,
      'AWS::Partition': env.partition,
      'AWS::URLSuffix': env.urlSuffix,
      'AWS::StackName': stackName,
      'AWS::StackId': `arn:${env.partition}:cloudformation:${env.region}:${env.account}:stack/${stackName}/twin`,
      'AWS::NotificationARNs': '',
    };
  }

  resource(logicalId: string): CfnResource {
    const r = this.template.Resources[logicalId];
    if (!r) throw new TwinTemplateError(`the template has no resource ${logicalId}`);
    return r;
  }

  /** Records what a created resource resolves to. */
  define(logicalId: string, physical: PhysicalResource): void {
    this.physical.set(logicalId, physical);
  }

  isDefined(logicalId: string): boolean {
    return this.physical.has(logicalId);
  }

  ref(logicalId: string, path: string): unknown {
    return this.lookup(logicalId, path).ref;
  }

  getAtt(logicalId: string, attribute: string, path: string): unknown {
    const found = this.lookup(logicalId, path).attributes[attribute];
    if (found === undefined) {
      throw new TwinTemplateError(
        `${path}: ${logicalId} (${this.resource(logicalId).Type}) has no attribute ${attribute} in the twin`,
      );
    }
    return found;
  }

  resolve(value: unknown, path = '$'): unknown {
    return resolveIntrinsics(value, this, path);
  }

  resolveString(value: unknown, path = '$'): string {
    return resolveString(value, this, path);
  }

  /** A resource's properties with every intrinsic resolved. */
  properties(logicalId: string): Record<string, unknown> {
    return (this.resolve(this.resource(logicalId).Properties ?? {}, `Resources.${logicalId}.Properties`) ??
      {}) as Record<string, unknown>;
  }

  /**
   * The name CloudFormation generates for a resource without an explicit one: `<stack>-<logicalId>-<suffix>`,
   * trimmed to `maxLength` (lower case for buckets). The suffix is stable for a stack name and logical id.
   */
  generatedName(logicalId: string, maxLength: number, lowerCase = false): string {
    const suffix = createHash('sha256')
      .update(`${this.stackName}/${logicalId}`)
      .digest('hex')
      .slice(0, 12)
      .toUpperCase();
    const room = maxLength - suffix.length - 2;
    const stackPart = this.stackName.slice(0, Math.floor(room / 2));
    const idPart = logicalId.slice(0, room - stackPart.length);
    const name = `${stackPart}-${idPart}-${suffix}`;
    return lowerCase ? name.toLowerCase() : name;
  }

  arn(service: string, resource: string, options: { region?: string; account?: string } = {}): string {
    const region = options.region ?? this.env.region;
    const account = options.account ?? this.env.account;
    return `arn:${this.env.partition}:${service}:${region}:${account}:${resource}`;
  }

  private lookup(logicalId: string, path: string): PhysicalResource {
    const found = this.physical.get(logicalId);
    if (found) return found;
    const parameter = this.template.Parameters?.[logicalId] as { Default?: unknown } | undefined;
    if (parameter) return { ref: parameter.Default ?? '', attributes: {} };
    const resource = this.template.Resources[logicalId];
    if (!resource) throw new TwinTemplateError(`${path}: the template has no resource or parameter ${logicalId}`);
    throw new TwinTemplateError(
      `${path}: ${logicalId} (${resource.Type}${cdkPath(resource) ? `, ${cdkPath(resource)}` : ''}) is not created by ` +
        'the twin, so it cannot be referenced here',
    );
  }
}
