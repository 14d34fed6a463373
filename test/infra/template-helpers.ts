// Test helpers that read the synthesized template as an AWS engineer would: containers, lambda-rie flags, metric math.
import type { Template } from 'aws-cdk-lib/assertions';
import { resolveRuntime } from '../../lib/core/runtime-kind';
import { gridUnit, type GridUnit } from '../../lib/infra/grid-unit';

export type ContainerDef = {
  Name: string;
  Image?: unknown;
  Command?: string[];
  EntryPoint?: string[];
  Environment?: { Name: string; Value: unknown }[];
  User?: string;
  ReadonlyRootFilesystem?: boolean;
  Essential?: boolean;
  StopTimeout?: number;
  PortMappings?: { ContainerPort: number }[];
  MountPoints?: { ContainerPath: string; SourceVolume: string; ReadOnly?: boolean }[];
  DependsOn?: { ContainerName: string; Condition: string }[];
};

type Resource = { Type: string; Properties: Record<string, any> };

/** The one task definition of the template. */
export function taskDefinition(t: Template): Record<string, any> {
  const defs = Object.values(t.findResources('AWS::ECS::TaskDefinition')) as Resource[];
  if (defs.length !== 1) throw new Error(`expected one task definition, found ${defs.length}`);
  return defs[0]!.Properties;
}

export function containers(t: Template): ContainerDef[] {
  return (taskDefinition(t).ContainerDefinitions as ContainerDef[]) ?? [];
}

export function container(t: Template, name: string): ContainerDef {
  const found = containers(t).find((c) => c.Name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

export function lambdaContainers(t: Template): ContainerDef[] {
  return containers(t).filter((c) => /^lambda-\d+$/.test(c.Name));
}

export function env(c: ContainerDef, name: string): unknown {
  return c.Environment?.find((e) => e.Name === name)?.Value;
}

/** A `Fn::Join` of strings and tokens, with each token rendered as `<token>`. */
export function joined(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join) return '<token>';
  return join[1].map((part) => (typeof part === 'string' ? part : '<token>')).join(join[0]);
}

/**
 * The addresses a lambda-rie command line binds, read as lambda-rie reads them (go-flags: `--flag value` or
 * `--flag=value`), with lambda-rie's defaults: the invoke API on 0.0.0.0:8080 (`internal/lambda/rie/run.go`) and the
 * Runtime API on 127.0.0.1:9001 (`internal/lambda/rapidcore/sandbox_builder.go`).
 */
export function rieAddresses(commandLine: readonly string[]): { invoke: string; runtimeApi: string } {
  const flag = (name: string): string | undefined => {
    for (let i = 0; i < commandLine.length; i++) {
      const arg = commandLine[i]!;
      if (arg === `--${name}`) return commandLine[i + 1];
      if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
    }
    return undefined;
  };
  return {
    invoke: flag('runtime-interface-emulator-address') ?? '0.0.0.0:8080',
    runtimeApi: flag('runtime-api-address') ?? '127.0.0.1:9001',
  };
}

/** The port of a `host:port` address. */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** A metric-math query as CloudFormation holds it (alarm `Metrics` or target tracking `CustomizedMetricSpecification`). */
export type MetricQuery = { Id: string; Expression?: string; MetricStat?: unknown; ReturnData?: boolean };

/** Every metric-math query list in the template: each alarm's and each target tracking policy's. */
export function metricQueryLists(t: Template): { name: string; queries: MetricQuery[] }[] {
  const lists: { name: string; queries: MetricQuery[] }[] = [];
  for (const [id, alarm] of Object.entries(t.findResources('AWS::CloudWatch::Alarm'))) {
    const queries = (alarm as Resource).Properties.Metrics as MetricQuery[] | undefined;
    if (queries) lists.push({ name: id, queries });
  }
  for (const [id, policy] of Object.entries(t.findResources('AWS::ApplicationAutoScaling::ScalingPolicy'))) {
    const spec = (policy as Resource).Properties.TargetTrackingScalingPolicyConfiguration
      ?.CustomizedMetricSpecification as { Metrics?: MetricQuery[] } | undefined;
    if (spec?.Metrics) lists.push({ name: id, queries: spec.Metrics });
  }
  return lists;
}

/** The expression a query list returns (the one query with ReturnData true, or left at its default). */
export function returnedExpression(queries: readonly MetricQuery[]): string {
  const returned = queries.filter((q) => q.ReturnData !== false);
  if (returned.length !== 1 || !returned[0]!.Expression) {
    throw new Error(`expected one returned expression, got ${JSON.stringify(returned)}`);
  }
  return returned[0]!.Expression;
}

/** The target tracking policy of the ECS service. */
export function backlogPolicy(t: Template): Record<string, any> {
  const policies = Object.values(t.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as Resource[];
  const tracking = policies.filter(
    (p) => p.Properties.TargetTrackingScalingPolicyConfiguration?.CustomizedMetricSpecification,
  );
  if (tracking.length !== 1) throw new Error(`expected one backlog target tracking policy, found ${tracking.length}`);
  return tracking[0]!.Properties;
}

/** The agent configuration document (`HTCGRID_CONFIG`), its deploy-time values rendered as `<token>`. */
export function agentDocument(t: Template): Record<string, any> {
  return JSON.parse(joined(env(container(t, 'agent'), 'HTCGRID_CONFIG'))) as Record<string, any>;
}

/** A grid unit of `slots` slots with the defaults a deployed grid has, for tests of its translations. */
export function testUnit(slots: number, runtime = 'python3.12'): GridUnit {
  return gridUnit({
    slots,
    runtime: resolveRuntime(runtime),
    handler: 'lambda_function.lambda_handler',
    taskTimeoutSec: 900,
    memorySizeMb: 3008,
    functionName: 'function',
    workerBucket: 'bucket',
    workerKey: 'workers/w.zip',
    agentEnvironment: { HTCGRID_CONFIG: '{}' },
    stopTimeoutSec: 120,
  });
}
