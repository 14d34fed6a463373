// The grid unit as a pod, over every slot count and runtime: schema-valid, the unit's order kept by init containers
// and sidecars, and units that a pod cannot express refused with the reason.
import { Duration } from 'aws-cdk-lib';
import { Pod } from 'kubernetes-models/v1';
import { compileConfig } from '../../lib/core/config';
import { WORKER_RUNTIMES } from '../../lib/core/runtime-kind';
import { MAX_SLOTS } from '../../lib/infra/grid-unit';
import { idleMinutes } from '../../lib/infra/backlog-scaling';
import { eksPlaneSettings, type EksComputePlaneProps } from '../../lib/infra/eks-compute-plane';
import {
  backlogScaledObject,
  gridObjectNames,
  MAX_STABILIZATION_SEC,
  podPlacements,
  unitPodSpec,
} from '../../lib/infra/unit-pod';
import { testUnit } from './template-helpers';

const OPTIONS = {
  images: { init: 'init:1', lambda: 'lambda:1', agent: 'agent:1' },
  serviceAccountName: 'htcgrid-agent',
  cpuMillis: 4000,
  memoryMiB: 8192,
};

describe.each(Array.from({ length: MAX_SLOTS }, (_, i) => i + 1))('a pod of %i slot(s)', (slots) => {
  it.each(WORKER_RUNTIMES.map((r) => r.name))('is a valid pod for %s', (runtime) => {
    const spec = unitPodSpec(testUnit(slots, runtime), OPTIONS);

    expect(() => new Pod({ metadata: { name: 'agent' }, spec }).validate()).not.toThrow();
    expect(spec.initContainers!.map((c) => c.name)).toEqual([
      'fetch-worker',
      ...Array.from({ length: slots }, (_, i) => `lambda-${i}`),
    ]);
    const requests = [...spec.initContainers!.slice(1), ...spec.containers].map((c) => c.resources!.requests!);
    const millis = requests.reduce((sum, r) => sum + Number(String(r.cpu).replace('m', '')), 0);
    expect(millis).toBeLessThanOrEqual(OPTIONS.cpuMillis);
  });
});

describe('podPlacements', () => {
  it('refuses a unit whose container waits for one that starts after it', () => {
    const u = testUnit(1);
    const reordered = { ...u, containers: [u.containers[0]!, u.containers[2]!, u.containers[1]!] };

    expect(() => podPlacements(reordered)).toThrow(/agent depends on lambda-0, which does not start before it/);
  });

  it('refuses a unit waiting for the start of a container that exits', () => {
    const u = testUnit(1);
    const agent = u.containers[2]!;
    const waitsForInit = { ...agent, dependsOn: [{ container: 'fetch-worker', condition: 'START' as const }] };

    expect(() => podPlacements({ ...u, containers: [u.containers[0]!, u.containers[1]!, waitsForInit] })).toThrow(
      /fetch-worker exits, so nothing may wait for its start/,
    );
  });
});

describe('gridObjectNames', () => {
  it('makes a DNS label of any grid name', () => {
    const names = gridObjectNames('My_Grid: Risk/EOD ' + 'x'.repeat(80));

    expect(names.namespace).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(names.namespace.length).toBeLessThanOrEqual(63);
    expect(names.namespace.startsWith('htcgrid-my-grid-risk-eod-')).toBe(true);
  });
});

describe('backlogScaledObject', () => {
  const names = gridObjectNames('g');
  const options = {
    queueUrls: ['https://sqs/q0', 'https://sqs/q1'],
    region: 'eu-west-1',
    targetBacklogPerAgent: 2,
    maxAgents: 10,
    taskTimeoutSec: 7200,
  };

  it('never lets the HPA scale in when the grid scales to zero (KEDA does, once idle)', () => {
    const scaled = backlogScaledObject(names, { ...options, minAgents: 0 });

    expect(scaled.spec.advanced?.horizontalPodAutoscalerConfig?.behavior?.scaleDown).toEqual({
      selectPolicy: 'Disabled',
    });
    expect(scaled.spec.cooldownPeriod).toBe(idleMinutes(7200) * 60);
  });

  it('with a minimum above zero, scales in once the lower backlog lasted the idle time, at most the HPA hour', () => {
    const scaled = backlogScaledObject(names, { ...options, minAgents: 2 });

    expect(scaled.spec.advanced?.horizontalPodAutoscalerConfig?.behavior?.scaleDown).toEqual({
      stabilizationWindowSeconds: MAX_STABILIZATION_SEC,
    });
    expect(() => scaled.validate()).not.toThrow();
  });
});

describe('eksPlaneSettings', () => {
  const config = compileConfig({ slots: 2 });
  const base = { config, queues: [{}, {}], worker: {}, table: {}, dataBucket: {} } as unknown as EksComputePlaneProps;

  it('refuses a drain longer than the Spot notice with spot, and a pod too small for its slots, at once', () => {
    expect(() =>
      eksPlaneSettings({ ...base, spot: true, stopTimeout: Duration.seconds(300), podCpuMillis: 300 }),
    ).toThrow(/Spot's 120s interruption notice[\s\S]*pod cpu: 300m is too little for 2 slot\(s\): use at least 450m/);
  });

  it('allows a drain of up to an hour On-Demand (no Fargate cap)', () => {
    expect(eksPlaneSettings({ ...base, stopTimeout: Duration.minutes(30) }).stopTimeoutSec).toBe(1800);
  });
});
