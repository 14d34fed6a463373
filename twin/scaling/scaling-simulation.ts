// Scaling simulated over the phases a grid lives through (idle, a burst from zero, steady load, drain, idle again),
// second by second in simulated time: the backlog the load and the simulated ECS tasks produce, the metrics CloudWatch
// would publish, the template's alarms and policies deciding the desired count. Alarms evaluate independently within a
// minute, so every order of them is tried: a design must hold whichever fires first.
import type { DeployedStack } from '../template/deployed-stack';
import type { Series } from './metric-math';
import {
  alarmState,
  querySeries,
  readScalingModel,
  type AlarmState,
  type MetricRef,
  type Policy,
  type ScalingModel,
} from './scaling-model';

export interface ScalingOptions {
  /** Tasks per second one ECS task completes (measured by the twin's run). */
  readonly measuredTasksPerSecPerAgent: number;
  /** Lambda containers per ECS task (in-flight messages an agent holds). */
  readonly slots?: number;
  /**
   * Seconds from a raised desired count to a RUNNING task (Fargate provisioning and image pulls).
   * @default 60
   */
  readonly taskStartSec?: number;
}

export interface ScalingDecision {
  readonly at: string;
  readonly policy: string;
  readonly from: number;
  readonly to: number;
  readonly why: string;
}

export interface ScalingReport {
  readonly assumptions: string[];
  readonly phases: string[];
  readonly ordersTried: number;
  /** The order of alarms in the reported simulation. */
  readonly alarmOrder: string[];
  readonly scaleOutFromZeroSec?: number;
  readonly maxDesired: number;
  readonly finalDesired: number;
  readonly flaps: number;
  readonly decisions: ScalingDecision[];
  readonly failures: string[];
}

const MINUTE = 60;

interface Phase {
  readonly name: string;
  readonly startMin: number;
  /** Tasks per second arriving during the phase. */
  readonly rate: number;
  /** Tasks arriving at once when the phase starts. */
  readonly burst: number;
}

export function simulateScaling(stack: DeployedStack, options: ScalingOptions): ScalingReport {
  const model = readScalingModel(stack);
  const r = options.measuredTasksPerSecPerAgent;
  const burst = Math.max(200, Math.ceil(r * 600));
  const phases: Phase[] = [
    { name: 'idle', startMin: 0, rate: 0, burst: 0 },
    { name: 'burst from zero', startMin: 20, rate: 0, burst },
    { name: 'steady', startMin: 30, rate: 3 * r, burst: 0 },
    { name: 'drain', startMin: 50, rate: 0, burst: 0 },
    { name: 'idle again', startMin: 70, rate: 0, burst: 0 },
  ];
  const endMin = 100;
  const orders = permutations(model.alarms.map((_, i) => i));
  let reported: RunResult | undefined;
  for (const order of orders) {
    const run = simulate(model, phases, endMin, order, options);
    reported ??= run;
    if (run.failures.length > 0) {
      reported = run;
      break;
    }
  }
  const run = reported!;
  return {
    assumptions: [
      `one ECS task completes ${r.toFixed(2)} tasks/s (measured in this run) and holds up to 2 x slots messages in flight`,
      `a raised desired count becomes a RUNNING task after ${options.taskStartSec ?? 60} s; a lowered one stops at once`,
      'SQS and Container Insights publish every minute (RunningTaskCount 0 while none runs); no publishing delay',
      `target tracking: AlarmHigh ${3} of 3 datapoints above the target, AlarmLow 15 of 15 below 90 % of it; new capacity = ceil(max(capacity, 1) x metric / target)`,
      'alarms invoke their policy at every evaluation while in ALARM; cooldowns as the Application Auto Scaling API reference words them',
    ],
    phases: phases.map(
      (p) =>
        `${p.name} from ${p.startMin} min${p.burst ? ` (${p.burst} tasks at once)` : p.rate ? ` (${p.rate.toFixed(1)} tasks/s)` : ''}`,
    ),
    ordersTried: orders.length,
    alarmOrder: run.order.map((i) => model.alarms[i]!.name),
    scaleOutFromZeroSec: run.scaleOutFromZeroSec,
    maxDesired: run.maxDesired,
    finalDesired: run.finalDesired,
    flaps: run.flaps,
    decisions: run.decisions.slice(0, 40),
    failures: run.failures,
  };
}

interface RunResult {
  order: number[];
  decisions: ScalingDecision[];
  failures: string[];
  scaleOutFromZeroSec?: number;
  maxDesired: number;
  finalDesired: number;
  flaps: number;
}

interface SimTask {
  readyAt: number;
}

function simulate(
  model: ScalingModel,
  phases: Phase[],
  endMin: number,
  order: number[],
  options: ScalingOptions,
): RunResult {
  const perAgent = options.measuredTasksPerSecPerAgent;
  const holdPerAgent = 2 * (options.slots ?? 1);
  const startSec = options.taskStartSec ?? 60;
  let desired = model.minCapacity;
  const tasks: SimTask[] = Array.from({ length: desired }, () => ({ readyAt: 0 }));
  let backlog = 0;
  let arrived = 0;
  let completed = 0;
  const perMinute = {
    visible: [] as number[],
    inflight: [] as number[],
    runningAvg: [] as number[],
    runningMax: [] as number[],
  };
  let minute = { visible: 0, inflight: 0, runningSum: 0, runningMax: 0 };
  const states: AlarmState[] = model.alarms.map(() => 'INSUFFICIENT_DATA');
  const decisions: ScalingDecision[] = [];
  const failures: string[] = [];
  const lastActivity = new Map<string, { at: number; direction: 'out' | 'in'; base: number }>();
  let targetScaleInCooldownUntil = 0;
  let scaleOutFromZeroSec: number | undefined;
  let maxDesired = desired;
  const burstPhase = phases.find((p) => p.burst > 0);
  const burstAt = (burstPhase?.startMin ?? 0) * MINUTE;

  const clock = (t: number) => `${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
  const apply = (t: number, policy: Policy, to: number, why: string) => {
    const next = Math.max(model.minCapacity, Math.min(model.maxCapacity, to));
    if (next === desired) return;
    const direction = next > desired ? 'out' : 'in';
    const previous = decisions[decisions.length - 1];
    decisions.push({ at: clock(t), policy: policy.name, from: desired, to: next, why });
    if (direction === 'in' && next === 0 && backlog > 0) {
      if (zeroWhileWaiting++ === 0)
        firstZeroWhileWaiting = `at ${clock(t)} while ${Math.round(backlog)} task(s) waited (${policy.name}: ${why})`;
    }
    if (previous && previous.to !== previous.from) {
      const prevDirection = previous.to > previous.from ? 'out' : 'in';
      const [pm, ps] = previous.at.split(':').map(Number);
      if (prevDirection !== direction && t - ((pm ?? 0) * 60 + (ps ?? 0)) < 300) flaps++;
    }
    lastActivity.set(policy.name, { at: t, direction, base: desired });
    if (direction === 'out') targetScaleInCooldownUntil = 0;
    else if (policy.kind === 'target') targetScaleInCooldownUntil = t + policy.scaleInCooldownSec;
    if (direction === 'out' && desired === 0 && t >= burstAt && scaleOutFromZeroSec === undefined)
      scaleOutFromZeroSec = t - burstAt;
    while (tasks.length < next) tasks.push({ readyAt: t + startSec });
    while (tasks.length > next) tasks.pop();
    desired = next;
    maxDesired = Math.max(maxDesired, desired);
  };
  let flaps = 0;
  let zeroWhileWaiting = 0;
  let firstZeroWhileWaiting = '';

  const metric = (m: MetricRef): Series => {
    const isWork = m.dimensions.QueueName !== undefined && model.workQueues[0] === m.dimensions.QueueName;
    if (m.namespace === 'AWS/SQS' && m.dimensions.QueueName !== undefined) {
      // All simulated work sits in the first work queue; the others are empty but publish like every queue does.
      if (m.metricName === 'ApproximateNumberOfMessagesVisible') return perMinute.visible.map((v) => (isWork ? v : 0));
      if (m.metricName === 'ApproximateNumberOfMessagesNotVisible')
        return perMinute.inflight.map((v) => (isWork ? v : 0));
      return perMinute.visible.map(() => 0);
    }
    if (m.namespace === 'ECS/ContainerInsights' && m.metricName === 'RunningTaskCount') {
      return m.stat === 'Maximum' ? [...perMinute.runningMax] : [...perMinute.runningAvg];
    }
    return perMinute.visible.map(() => undefined);
  };

  for (let t = 0; t < endMin * MINUTE; t++) {
    const phase = [...phases].reverse().find((p) => p.startMin * MINUTE <= t)!;
    if (phase.burst > 0 && t === phase.startMin * MINUTE) {
      backlog += phase.burst;
      arrived += phase.burst;
    }
    backlog += phase.rate;
    arrived += phase.rate;
    const running = tasks.filter((x) => x.readyAt <= t).length;
    // Messages the agents hold while they work on them this second; the rest wait visible in the queue.
    const inflight = Math.min(backlog, running * holdPerAgent);
    minute.visible = Math.max(minute.visible, backlog - inflight);
    minute.inflight = Math.max(minute.inflight, inflight);
    const done = Math.min(inflight, running * perAgent);
    backlog -= done;
    completed += done;
    minute.runningSum += running;
    minute.runningMax = Math.max(minute.runningMax, running);
    if ((t + 1) % MINUTE !== 0) continue;
    perMinute.visible.push(Math.round(minute.visible));
    perMinute.inflight.push(Math.round(minute.inflight));
    perMinute.runningAvg.push(minute.runningSum / MINUTE);
    perMinute.runningMax.push(minute.runningMax);
    minute = { visible: 0, inflight: 0, runningSum: 0, runningMax: 0 };
    const now = t + 1;
    for (const i of order) {
      const alarm = model.alarms[i]!;
      const series = querySeries(alarm.queries, perMinute.visible.length, metric);
      states[i] = alarmState(alarm, series, states[i]!);
      if (states[i] !== 'ALARM') continue;
      const policy = model.policies.find((p) => p.name === alarm.policy);
      const value = series[series.length - 1];
      if (!policy || value === undefined) continue;
      invoke(now, policy, value, alarm.threshold, alarm.side);
    }
  }

  function invoke(t: number, policy: Policy, value: number, threshold: number, side: 'high' | 'low' | undefined): void {
    const last = lastActivity.get(policy.name);
    if (policy.kind === 'step') {
      const breach = value - threshold;
      const step = policy.steps.find(
        (s) => (s.lower === undefined || breach >= s.lower) && (s.upper === undefined || breach < s.upper),
      );
      if (!step) return;
      const inCooldown = last !== undefined && t - last.at < policy.cooldownSec;
      const base = inCooldown && last.direction === 'out' ? last.base : desired;
      let to: number;
      if (policy.adjustmentType === 'ExactCapacity') to = step.adjustment;
      else if (policy.adjustmentType === 'PercentChangeInCapacity') {
        let change = Math.trunc((base * step.adjustment) / 100);
        if (policy.minAdjustmentMagnitude && Math.abs(change) < policy.minAdjustmentMagnitude)
          change = Math.sign(step.adjustment) * policy.minAdjustmentMagnitude;
        to = base + change;
      } else to = base + step.adjustment;
      if (to < desired && inCooldown) return;
      // During a scale-out cooldown the capacity the last scale-out added counts towards this one.
      if (to > desired || (to < desired && !inCooldown))
        apply(
          t,
          policy,
          to,
          `alarm at ${value.toFixed(2)} (threshold ${threshold}): ${step.adjustment > 0 ? '+' : ''}${step.adjustment}`,
        );
      return;
    }
    const capacityFor = (base: number) => Math.ceil((Math.max(base, 1) * value) / policy.target - 1e-9);
    if (side === 'high') {
      const inCooldown = last !== undefined && last.direction === 'out' && t - last.at < policy.scaleOutCooldownSec;
      const to = capacityFor(inCooldown ? last.base : desired);
      if (to > desired) apply(t, policy, to, `metric ${value.toFixed(2)} above target ${policy.target}`);
    } else if (side === 'low' && t >= targetScaleInCooldownUntil) {
      const to = value === 0 ? 0 : Math.ceil((desired * value) / policy.target - 1e-9);
      if (to < desired)
        apply(t, policy, to, `metric ${value.toFixed(2)} below ${(policy.target * 0.9).toFixed(2)} for 15 min`);
    }
  }

  if (zeroWhileWaiting > 0)
    failures.push(`scaled in to zero ${zeroWhileWaiting} time(s) while work waited, first ${firstZeroWhileWaiting}`);
  const serveCheck = arrived - completed;
  if (serveCheck > 0.5)
    failures.push(
      `${Math.round(serveCheck)} task(s) still waited when the simulation ended: the service never caught up`,
    );
  if (burstPhase && scaleOutFromZeroSec === undefined)
    failures.push('no scale-out from zero: work arrived at zero tasks and the desired count stayed 0');
  else if (scaleOutFromZeroSec !== undefined && scaleOutFromZeroSec > MINUTE) {
    failures.push(`scale-out from zero took ${scaleOutFromZeroSec} s (more than one 60 s period)`);
  }
  if (flaps > 0) failures.push(`the desired count reversed direction ${flaps} time(s) within 5 minutes (flapping)`);
  if (desired !== 0 && model.minCapacity === 0)
    failures.push(`the service did not scale back to zero when idle (desired ${desired} at the end)`);
  return { order, decisions, failures, scaleOutFromZeroSec, maxDesired, finalDesired: desired, flaps };
}

function permutations(items: number[]): number[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]),
  );
}
