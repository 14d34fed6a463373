// The grid unit as a pod, over every slot count and runtime: schema-valid, the unit's order kept by init containers
// and sidecars, and units that a pod cannot express refused with the reason.
import { Pod } from 'kubernetes-models/v1';
import { resolveRuntime, WORKER_RUNTIMES } from '../../lib/core/runtime-kind';
import { gridUnit, MAX_SLOTS, type GridUnit } from '../../lib/infra/grid-unit';
import { gridObjectNames, podPlacements, unitPodSpec } from '../../lib/infra/unit-pod';

function unit(slots: number, runtime = 'python3.12'): GridUnit {
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

const OPTIONS = {
  images: { init: 'init:1', lambda: 'lambda:1', agent: 'agent:1' },
  serviceAccountName: 'htcgrid-agent',
  cpuMillis: 4000,
  memoryMiB: 8192,
};

describe.each(Array.from({ length: MAX_SLOTS }, (_, i) => i + 1))('a pod of %i slot(s)', (slots) => {
  it.each(WORKER_RUNTIMES.map((r) => r.name))('is a valid pod for %s', (runtime) => {
    const spec = unitPodSpec(unit(slots, runtime), OPTIONS);

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
    const u = unit(1);
    const reordered = { ...u, containers: [u.containers[0]!, u.containers[2]!, u.containers[1]!] };

    expect(() => podPlacements(reordered)).toThrow(/agent depends on lambda-0, which does not start before it/);
  });

  it('refuses a unit waiting for the start of a container that exits', () => {
    const u = unit(1);
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
