// The template's scaling as AWS runs it: CloudWatch alarms (explicit ones, and the two Application Auto Scaling
// creates for each target tracking policy) evaluated every minute over the metrics, and the policies they invoke
// applied to the scalable target as the Application Auto Scaling User Guide documents them.
import { TwinTemplateError } from '../errors';
import { resourcesOfType, text } from '../template/cfn-template';
import type { DeployedStack } from '../template/deployed-stack';
import { evaluateExpression, type Series } from './metric-math';

/** A metric the simulation produces, named as CloudWatch names it. */
export interface MetricRef {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
  readonly stat: string;
}

/** One query of an alarm or a customized metric specification. */
interface MetricQuery {
  readonly id: string;
  readonly expression?: string;
  readonly metric?: MetricRef;
  readonly returnData: boolean;
}

export interface Alarm {
  readonly name: string;
  readonly queries: readonly MetricQuery[];
  readonly comparison: string;
  readonly threshold: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly treatMissing: 'missing' | 'notBreaching' | 'breaching' | 'ignore';
  /** The policy it invokes while in ALARM. */
  readonly policy: string;
  /** For target tracking alarms: which side. */
  readonly side?: 'high' | 'low';
}

export interface StepPolicy {
  readonly kind: 'step';
  readonly name: string;
  readonly adjustmentType: string;
  readonly cooldownSec: number;
  readonly minAdjustmentMagnitude?: number;
  readonly steps: readonly { lower?: number; upper?: number; adjustment: number }[];
}

export interface TargetTrackingPolicy {
  readonly kind: 'target';
  readonly name: string;
  readonly target: number;
  readonly scaleOutCooldownSec: number;
  readonly scaleInCooldownSec: number;
  readonly disableScaleIn: boolean;
  readonly queries: readonly MetricQuery[];
}

export type Policy = StepPolicy | TargetTrackingPolicy;

export interface ScalingModel {
  readonly minCapacity: number;
  readonly maxCapacity: number;
  readonly policies: readonly Policy[];
  readonly alarms: readonly Alarm[];
  /** Queues whose backlog the grid serves (those with a dead-letter redrive), by physical name. */
  readonly workQueues: readonly string[];
  readonly cluster: string;
  readonly service: string;
}

/** Target tracking alarms, as Application Auto Scaling creates them for 1-minute metrics. */
export const TARGET_TRACKING_HIGH_PERIODS = 3;
export const TARGET_TRACKING_LOW_PERIODS = 15;
export const TARGET_TRACKING_LOW_FACTOR = 0.9;

function metricQueries(raw: unknown[], stack: DeployedStack): MetricQuery[] {
  return raw.map((q) => {
    const m = q as {
      Id: string;
      Expression?: string;
      ReturnData?: boolean;
      MetricStat?: {
        Metric: { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: string }[] };
        Stat: string;
      };
    };
    return {
      id: m.Id,
      expression: m.Expression,
      returnData: m.ReturnData ?? true,
      metric: m.MetricStat
        ? {
            namespace: m.MetricStat.Metric.Namespace,
            metricName: m.MetricStat.Metric.MetricName,
            dimensions: Object.fromEntries(
              (m.MetricStat.Metric.Dimensions ?? []).map((d) => [d.Name, String(d.Value)]),
            ),
            stat: m.MetricStat.Stat,
          }
        : undefined,
    };
  });
  void stack;
}

/** Reads the scalable target of the ECS service, its policies, and the alarms that invoke them. */
export function readScalingModel(stack: DeployedStack): ScalingModel {
  const targets = resourcesOfType(stack.template, 'AWS::ApplicationAutoScaling::ScalableTarget');
  if (targets.length !== 1)
    throw new TwinTemplateError(`the template has ${targets.length} scalable targets; the twin simulates one`);
  const [targetId] = targets[0]!;
  const target = stack.properties(targetId);
  const resourceId = String(target.ResourceId);
  const [, cluster = '', service = ''] = resourceId.split('/');
  const policies: Policy[] = [];
  const alarms: Alarm[] = [];
  for (const [policyId] of resourcesOfType(stack.template, 'AWS::ApplicationAutoScaling::ScalingPolicy')) {
    const props = stack.properties(policyId);
    const name = text(props.PolicyName ?? policyId);
    if (props.PolicyType === 'TargetTrackingScaling') {
      const c = props.TargetTrackingScalingPolicyConfiguration as Record<string, unknown>;
      const spec = c.CustomizedMetricSpecification as { Metrics?: unknown[] } | undefined;
      if (!spec?.Metrics)
        throw new TwinTemplateError(`${policyId}: the twin simulates customized metric math specifications`);
      const queries = metricQueries(spec.Metrics, stack);
      const tt: TargetTrackingPolicy = {
        kind: 'target',
        name,
        target: Number(c.TargetValue),
        scaleOutCooldownSec: Number(c.ScaleOutCooldown ?? 300),
        scaleInCooldownSec: Number(c.ScaleInCooldown ?? 300),
        disableScaleIn: Boolean(c.DisableScaleIn),
        queries,
      };
      policies.push(tt);
      alarms.push({
        name: `TargetTracking-${name}-AlarmHigh`,
        queries,
        comparison: 'GreaterThanThreshold',
        threshold: tt.target,
        evaluationPeriods: TARGET_TRACKING_HIGH_PERIODS,
        datapointsToAlarm: TARGET_TRACKING_HIGH_PERIODS,
        treatMissing: 'missing',
        policy: name,
        side: 'high',
      });
      if (!tt.disableScaleIn) {
        alarms.push({
          name: `TargetTracking-${name}-AlarmLow`,
          queries,
          comparison: 'LessThanThreshold',
          threshold: tt.target * TARGET_TRACKING_LOW_FACTOR,
          evaluationPeriods: TARGET_TRACKING_LOW_PERIODS,
          datapointsToAlarm: TARGET_TRACKING_LOW_PERIODS,
          treatMissing: 'missing',
          policy: name,
          side: 'low',
        });
      }
    } else if (props.PolicyType === 'StepScaling') {
      const c = props.StepScalingPolicyConfiguration as Record<string, unknown>;
      policies.push({
        kind: 'step',
        name,
        adjustmentType: String(c.AdjustmentType),
        cooldownSec: Number(c.Cooldown ?? 0),
        minAdjustmentMagnitude: c.MinAdjustmentMagnitude === undefined ? undefined : Number(c.MinAdjustmentMagnitude),
        steps: ((c.StepAdjustments ?? []) as Record<string, unknown>[]).map((s) => ({
          lower: s.MetricIntervalLowerBound === undefined ? undefined : Number(s.MetricIntervalLowerBound),
          upper: s.MetricIntervalUpperBound === undefined ? undefined : Number(s.MetricIntervalUpperBound),
          adjustment: Number(s.ScalingAdjustment),
        })),
      });
      for (const [alarmId] of resourcesOfType(stack.template, 'AWS::CloudWatch::Alarm')) {
        const raw = stack.template.Resources[alarmId]!.Properties ?? {};
        const actions = ((raw.AlarmActions ?? []) as unknown[]).map((a) => JSON.stringify(a));
        if (!actions.includes(JSON.stringify({ Ref: policyId }))) continue;
        const a = stack.properties(alarmId);
        const queries = a.Metrics
          ? metricQueries(a.Metrics as unknown[], stack)
          : [
              {
                id: 'm',
                returnData: true,
                metric: {
                  namespace: String(a.Namespace),
                  metricName: String(a.MetricName),
                  dimensions: Object.fromEntries(
                    ((a.Dimensions ?? []) as { Name: string; Value: string }[]).map((d) => [d.Name, String(d.Value)]),
                  ),
                  stat: text(a.Statistic ?? 'Average'),
                },
              },
            ];
        const periods = Number(a.EvaluationPeriods ?? 1);
        alarms.push({
          name: text(a.AlarmName ?? alarmId),
          queries,
          comparison: String(a.ComparisonOperator),
          threshold: Number(a.Threshold),
          evaluationPeriods: periods,
          datapointsToAlarm: Number(a.DatapointsToAlarm ?? periods),
          treatMissing: (a.TreatMissingData as Alarm['treatMissing'] | undefined) ?? 'missing',
          policy: name,
        });
      }
    }
  }
  const workQueues = resourcesOfType(stack.template, 'AWS::SQS::Queue')
    .filter(([, q]) => q.Properties?.RedrivePolicy !== undefined)
    .map(([id]) => String(stack.getAtt(id, 'QueueName', id)));
  return {
    minCapacity: Number(target.MinCapacity),
    maxCapacity: Number(target.MaxCapacity),
    policies,
    alarms,
    workQueues,
    cluster,
    service,
  };
}

/** The series a query set returns (its ReturnData query), over `length` minutes. */
export function querySeries(queries: readonly MetricQuery[], length: number, metric: (m: MetricRef) => Series): Series {
  const cache = new Map<string, Series>();
  const byId = new Map(queries.map((q) => [q.id, q]));
  const lookup = (id: string): Series => {
    const hit = cache.get(id);
    if (hit) return hit;
    const q = byId.get(id);
    if (!q) throw new TwinTemplateError(`metric math refers to ${id}, which the query set does not define`);
    const s = q.metric
      ? metric(q.metric)
      : evaluateExpression(q.expression ?? '0', length, lookup, metricIdsOf(queries));
    cache.set(id, s);
    return s;
  };
  const returned = queries.filter((q) => q.returnData);
  if (returned.length !== 1)
    throw new TwinTemplateError(`a metric query set must return exactly one series, it returns ${returned.length}`);
  return lookup(returned[0]!.id);
}

function metricIdsOf(queries: readonly MetricQuery[]): string[] {
  return queries.filter((q) => q.metric).map((q) => q.id);
}

export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/** The alarm's state from the last `evaluationPeriods` datapoints (CloudWatch's M out of N, missing data handling). */
export function alarmState(
  alarm: Alarm,
  datapoints: readonly (number | undefined)[],
  previous: AlarmState,
): AlarmState {
  const window = datapoints.slice(-alarm.evaluationPeriods);
  const breaches = (v: number) => {
    switch (alarm.comparison) {
      case 'GreaterThanThreshold':
        return v > alarm.threshold;
      case 'GreaterThanOrEqualToThreshold':
        return v >= alarm.threshold;
      case 'LessThanThreshold':
        return v < alarm.threshold;
      case 'LessThanOrEqualToThreshold':
        return v <= alarm.threshold;
      default:
        throw new TwinTemplateError(`alarm ${alarm.name}: comparison ${alarm.comparison} is not modelled`);
    }
  };
  const present = window.filter((v): v is number => v !== undefined);
  if (present.length === 0) {
    if (alarm.treatMissing === 'breaching') return 'ALARM';
    if (alarm.treatMissing === 'notBreaching') return 'OK';
    if (alarm.treatMissing === 'ignore') return previous;
    return 'INSUFFICIENT_DATA';
  }
  let breaching = present.filter(breaches).length;
  if (alarm.treatMissing === 'breaching') breaching += window.length - present.length;
  return breaching >= alarm.datapointsToAlarm ? 'ALARM' : 'OK';
}
