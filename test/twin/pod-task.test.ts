// The twin reads the EKS plane's agent pod as the task it runs, and finds the ECS task definition in it: the same
// containers, images, commands, users, env, volumes and ports, Kubernetes' start order holding every ECS dependency.
import { Pod } from 'kubernetes-models/v1';
import { GRID_ENV } from '../../lib/core/grid-resources';
import { EksComputePlane, NODE_IP_ENV } from '../../lib/infra/eks-compute-plane';
import { parseTaskDefinition } from '../../twin/ecs/task-definition';
import { podTaskDefinition } from '../../twin/eks/pod-task';
import { TwinTemplateError } from '../../twin/errors';
import { PYTHON_WORKER, synthGrid } from '../infra/grid-app';

/** CloudFormation intrinsics as their JSON text, so both sides compare by value (the twin resolves them alike). */
function flatten(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(flatten);
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::'))) return JSON.stringify(value);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, flatten(v)]));
  }
  return value;
}

const CONTEXT = { worker: PYTHON_WORKER, slots: '3' };

describe('the twin on the EKS pod', () => {
  const ecs = synthGrid(CONTEXT);
  const eks = synthGrid({ ...CONTEXT, compute: 'eks' });
  const taskDefProps = Object.values(ecs.template.findResources('AWS::ECS::TaskDefinition'))[0]!.Properties;
  const ecsTask = parseTaskDefinition(flatten(taskDefProps) as Record<string, unknown>);
  const plane = eks.stack.grid.compute as EksComputePlane;
  const podTask = podTaskDefinition(flatten(eks.stack.resolve(plane.manifests.AgentDeployment)));

  it('runs the containers of the ECS task, with the same images, commands, env, users, mounts and ports', () => {
    expect(podTask.containers.map((c) => c.name)).toEqual(ecsTask.containers.map((c) => c.name));
    for (const ecsC of ecsTask.containers) {
      const podC = podTask.containers.find((c) => c.name === ecsC.name)!;
      const { dependsOn: _d, stopTimeoutSec: _s, logStreamPrefix: _l, ...ecsRest } = ecsC;
      const { dependsOn: _pd, stopTimeoutSec: _ps, logStreamPrefix: _pl, ...podRest } = podC;
      // The pod's only additions: the agent's EMF endpoint, its node's IP (the twin's host) expanded in it.
      const {
        [NODE_IP_ENV]: nodeIp,
        [GRID_ENV.emfAgentEndpoint]: emfEndpoint,
        ...environment
      } = podRest.environment as Record<string, string | undefined>;
      podRest.environment = environment as Record<string, string>;
      expect([nodeIp, emfEndpoint]).toEqual(
        ecsC.name === 'agent' ? ['127.0.0.1', 'tcp://127.0.0.1:25888'] : [undefined, undefined],
      );
      expect({ ...podRest, image: podRest.image.replace(/:[0-9a-f]{64}/, ':HASH') }).toEqual({
        ...ecsRest,
        image: ecsRest.image.replace(/:[0-9a-f]{64}/, ':HASH'),
      });
      if (ecsC.essential) expect(podC.stopTimeoutSec).toBe(ecsC.stopTimeoutSec);
    }
    expect(podTask.volumes).toEqual(ecsTask.volumes);
    expect(podTask.pidMode).toBe(ecsTask.pidMode);
  });

  it('keeps every start dependency of the ECS task (and starts the sidecars one after the other)', () => {
    for (const ecsC of ecsTask.containers) {
      const podC = podTask.containers.find((c) => c.name === ecsC.name)!;
      expect(podC.dependsOn).toEqual(expect.arrayContaining(ecsC.dependsOn.map((d) => expect.objectContaining(d))));
    }
    expect(podTask.containers.find((c) => c.name === 'agent')!.dependsOn).toEqual([
      { containerName: 'fetch-worker', condition: 'SUCCESS' },
      { containerName: 'lambda-0', condition: 'START' },
      { containerName: 'lambda-1', condition: 'START' },
      { containerName: 'lambda-2', condition: 'START' },
    ]);
  });

  it('refuses a pod it would not run faithfully', () => {
    const pod = new Pod({
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'a', image: 'i' }], volumes: [{ name: 'v', hostPath: { path: '/x' } }] },
    });
    const deployment = { kind: 'Deployment', spec: { template: { spec: pod.spec } } };

    expect(() => podTaskDefinition(deployment)).toThrow(TwinTemplateError);
    expect(() => podTaskDefinition(deployment)).toThrow(/volume v: only emptyDir volumes/);
    expect(() => podTaskDefinition({ kind: 'Service' })).toThrow(/expected a Deployment/);
  });
});
