// The EKS compute plane: the same unit of work as the ECS task, as a pod validated against the Kubernetes schemas,
// the same grants, KEDA scaling on the backlog to zero, new and existing clusters, and cdk-nag clean.
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import type { Stack } from 'aws-cdk-lib';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ConfigError } from '../../lib/core/errors';
import { GRID_ENV } from '../../lib/core/grid-resources';
import { idleMinutes } from '../../lib/infra/backlog-scaling';
import { EksComputePlane, KEDA_CHART, NODE_IP_ENV } from '../../lib/infra/eks-compute-plane';
import type { HtcGridStack } from '../../lib/infra/htc-grid-stack';
import { slotAddresses } from '../../lib/infra/grid-unit';
import { PYTHON_WORKER, synthGrid } from './grid-app';

const HANDLER = {
  lambda_handler_file_name: 'portfolio_pricing_engine',
  lambda_handler_function_name: 'lambda_handler',
};
const BASE = { worker: PYTHON_WORKER, ...HANDLER, slots: '2', max_agents: '7' };

function eksPlane(stack: HtcGridStack): EksComputePlane {
  const plane = stack.grid.compute;
  if (!(plane instanceof EksComputePlane)) throw new Error(`expected the EKS plane, got ${plane.kind}`);
  return plane;
}

/** The grid's manifests with tokens resolved as CloudFormation will (the same form as the ECS template). */
function resolvedManifests(stack: HtcGridStack): Record<string, any> {
  return stack.resolve(eksPlane(stack).manifests) as Record<string, any>;
}

function resourcesOf(template: Template, type: string): any[] {
  return Object.values(template.findResources(type));
}

/** The statements of the policies attached to the role with this logical id. */
function roleStatements(template: Template, roleId: string): any[] {
  return resourcesOf(template, 'AWS::IAM::Policy')
    .filter((p) => (p.Properties.Roles as any[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as any[]);
}

function logicalIdOf(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as any);
}

describe('EksComputePlane (-c compute=eks, a new cluster)', () => {
  let ecs: ReturnType<typeof synthGrid>;
  let eks: ReturnType<typeof synthGrid>;
  let manifests: Record<string, any>;
  let pod: any;
  beforeAll(() => {
    ecs = synthGrid(BASE);
    eks = synthGrid({ ...BASE, compute: 'eks' }, { nag: true });
    manifests = resolvedManifests(eks.stack);
    pod = manifests.AgentDeployment.spec.template.spec;
  });

  it('is cdk-nag AwsSolutions clean, every suppression with its reason', () => {
    const errors = Annotations.fromStack(eks.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    expect(errors.map((e) => `${e.id}: ${JSON.stringify(e.entry.data).slice(0, 100)}`)).toEqual([]);
  });

  it('makes an EKS Auto Mode cluster, KEDA from its pinned chart, and no ECS service', () => {
    eks.template.resourceCountIs('AWS::ECS::Service', 0);
    eks.template.hasResourceProperties('AWS::EKS::Cluster', {
      ComputeConfig: Match.objectLike({ Enabled: true, NodePools: ['system', 'general-purpose'] }),
    });
    eks.template.hasResourceProperties('Custom::AWSCDK-EKS-HelmChart', {
      Chart: 'keda',
      Version: KEDA_CHART.version,
      Repository: KEDA_CHART.repository,
      Namespace: 'keda',
    });
  });

  it('gives the stack the same outputs as on ECS, so the client is the same', () => {
    expect(Object.keys(eks.template.toJSON().Outputs).sort()).toEqual(
      Object.keys(ecs.template.toJSON().Outputs).sort(),
    );
    expect(eks.template.toJSON().Outputs.Handler.Value).toBe('portfolio_pricing_engine.lambda_handler');
  });

  it('applies manifests that validate against the Kubernetes and KEDA schemas', () => {
    // As synthesized: deploy-time values are token strings until CloudFormation resolves them.
    const applied = eksPlane(eks.stack).manifests as Record<string, any>;
    expect(() => new Deployment(applied.AgentDeployment).validate()).not.toThrow();
    expect(() => new TriggerAuthentication(applied.BacklogScaling0).validate()).not.toThrow();
    expect(() => new ScaledObject(applied.BacklogScaling1).validate()).not.toThrow();
    // The validation is real: a bad port is refused.
    const broken = structuredClone(applied.AgentDeployment);
    broken.spec.template.spec.containers[0].ports = [{ containerPort: 'http' }];
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort/);
  });

  it('runs the ECS task definition containers, with the same commands, users, env and volumes, in the same order', () => {
    const taskDef = resourcesOf(ecs.template, 'AWS::ECS::TaskDefinition')[0].Properties;
    const ecsContainers = taskDef.ContainerDefinitions as any[];
    const podContainers = [...pod.initContainers, ...pod.containers];
    expect(podContainers.map((c: any) => c.name)).toEqual(ecsContainers.map((c) => c.Name));
    for (const ecsC of ecsContainers) {
      const podC = podContainers.find((c: any) => c.name === ecsC.Name);
      expect(podC.command).toEqual(ecsC.EntryPoint);
      expect(podC.args).toEqual(ecsC.Command);
      // The pod's only additions: where the agent sends EMF (the node's CloudWatch agent, see eks-compute-plane.ts).
      const emfDelivery = [NODE_IP_ENV, GRID_ENV.emfAgentEndpoint];
      const env = Object.fromEntries(
        (podC.env as any[]).filter((e) => !emfDelivery.includes(e.name)).map((e) => [e.name, e.value]),
      );
      expect(env).toEqual(Object.fromEntries((ecsC.Environment as any[]).map((e) => [e.Name, e.Value])));
      const added = (podC.env as any[]).filter((e) => emfDelivery.includes(e.name)).map((e) => e.name);
      expect(added).toEqual(ecsC.Name === 'agent' ? emfDelivery : []);
      expect(`${podC.securityContext.runAsUser}:${podC.securityContext.runAsGroup}`).toBe(ecsC.User);
      expect(podC.securityContext.readOnlyRootFilesystem).toBe(ecsC.ReadonlyRootFilesystem);
      expect(podC.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(podC.volumeMounts).toEqual(
        (ecsC.MountPoints as any[]).map((m) => ({
          name: m.SourceVolume,
          mountPath: m.ContainerPath,
          readOnly: m.ReadOnly,
        })),
      );
    }
    expect(pod.volumes.map((v: any) => v.name)).toEqual(taskDef.Volumes.map((v: any) => v.Name));
    expect(pod.volumes.every((v: any) => v.emptyDir !== undefined)).toBe(true);
    // The init container runs to completion first; the Lambda containers are sidecars started before the agent and
    // stopped after it, so the agent drains while they serve (ECS: SUCCESS, then START dependencies).
    expect(pod.initContainers.map((c: any) => [c.name, c.restartPolicy])).toEqual([
      ['fetch-worker', undefined],
      ['lambda-0', 'Always'],
      ['lambda-1', 'Always'],
    ]);
    expect(pod.containers.map((c: any) => c.name)).toEqual(['agent']);
  });

  it('shares one PID namespace and the sandbox uid, and drains within the ECS stop timeout', () => {
    const taskDef = resourcesOf(ecs.template, 'AWS::ECS::TaskDefinition')[0].Properties;
    expect(taskDef.PidMode).toBe('task');
    expect(pod.shareProcessNamespace).toBe(true);
    const agent = pod.containers[0];
    const lambdas = pod.initContainers.filter((c: any) => c.name.startsWith('lambda-'));
    for (const l of lambdas) expect(l.securityContext.runAsUser).toBe(agent.securityContext.runAsUser);
    expect(agent.securityContext.runAsNonRoot).toBe(true);
    const stopTimeout = (taskDef.ContainerDefinitions as any[]).find((c) => c.Name === 'agent').StopTimeout;
    expect(pod.terminationGracePeriodSeconds).toBe(stopTimeout);
  });

  it('gives each slot its own invoke and Runtime API ports, and the agent every endpoint', () => {
    const lambdas = pod.initContainers.filter((c: any) => c.name.startsWith('lambda-'));
    const addresses = lambdas.flatMap((c: any) => [c.command[2], c.command[4]]);
    expect(new Set(addresses).size).toBe(addresses.length);
    expect(addresses.every((a: string) => a.startsWith('127.0.0.1:'))).toBe(true);
    // Loopback only, as in the ECS task: no port is declared on the pod's network.
    expect([...pod.initContainers, ...pod.containers].every((c: any) => c.ports === undefined)).toBe(true);
    lambdas.forEach((c: any, slot: number) => {
      const a = slotAddresses(slot);
      expect(c.command).toEqual(
        expect.arrayContaining([
          '--runtime-interface-emulator-address',
          a.invokeAddress,
          '--runtime-api-address',
          a.runtimeApiAddress,
        ]),
      );
      expect(c.args).toEqual(['portfolio_pricing_engine.lambda_handler']);
    });
    const env = Object.fromEntries((pod.containers[0].env as any[]).map((e) => [e.name, e.value]));
    expect(env[GRID_ENV.lambdaEndpoints]).toBe([0, 1].map((s) => slotAddresses(s).endpoint).join(','));
    const init = Object.fromEntries((pod.initContainers[0].env as any[]).map((e) => [e.name, e.value]));
    expect(init[GRID_ENV.workerBucket]).toEqual({ Ref: expect.stringMatching(/WorkerBucket/) });
    expect(JSON.stringify(env[GRID_ENV.config])).toContain(
      '\\"lambda_handler_file_name\\":\\"portfolio_pricing_engine\\",\\"lambda_handler_function_name\\":\\"lambda_handler\\"',
    );
  });

  it('gives the agent pods, through Pod Identity, exactly the ECS task role grants', () => {
    const plane = eksPlane(eks.stack);
    const agentRoleId = logicalIdOf(eks.stack, plane.agentRole);
    const ecsTaskDef = resourcesOf(ecs.template, 'AWS::ECS::TaskDefinition')[0].Properties;
    const taskRoleId = ecsTaskDef.TaskRoleArn['Fn::GetAtt'][0];
    expect(roleStatements(eks.template, agentRoleId)).toEqual(roleStatements(ecs.template, taskRoleId));
    eks.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Action: ['sts:AssumeRole', 'sts:TagSession'],
            Principal: { Service: 'pods.eks.amazonaws.com' },
          }),
        ],
      },
      Description: Match.stringLikeRegexp('agent pods'),
    });
    eks.template.hasResourceProperties('AWS::EKS::PodIdentityAssociation', {
      Namespace: plane.names.namespace,
      ServiceAccount: plane.names.serviceAccount,
      RoleArn: { 'Fn::GetAtt': [agentRoleId, 'Arn'] },
    });
    expect(pod.serviceAccountName).toBe(plane.names.serviceAccount);
  });

  it('scales on visible and in-flight messages of every queue, from and to zero, never cutting a task short', () => {
    const scaled = manifests.BacklogScaling1;
    const queueRefs = resourcesOf(eks.template, 'AWS::SQS::Queue').length - 1; // minus the dead-letter queue
    expect(scaled.spec.triggers).toHaveLength(queueRefs);
    for (const t of scaled.spec.triggers) {
      expect(t.type).toBe('aws-sqs-queue');
      expect(t.metadata).toMatchObject({ scaleOnInFlight: 'true', queueLength: '4', activationQueueLength: '0' });
      expect(t.metadata.queueURL).toEqual({ Ref: expect.stringMatching(/Queue/) });
      expect(t.authenticationRef.name).toBe(manifests.BacklogScaling0.metadata.name);
    }
    expect(scaled.spec).toMatchObject({ minReplicaCount: 0, maxReplicaCount: 7 });
    expect(scaled.spec.cooldownPeriod).toBe(idleMinutes(Math.ceil(eks.stack.grid.config.taskTimeoutMs / 1000)) * 60);
    expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown).toEqual({ selectPolicy: 'Disabled' });
    expect(manifests.BacklogScaling0.spec.podIdentity.provider).toBe('aws');
  });

  it("turns the agents' agent-stats lines, as Container Insights stores them, into the task metrics", () => {
    const plane = eksPlane(eks.stack);
    const logGroupId = logicalIdOf(eks.stack, plane.logGroup as any);
    const group = eks.template.toJSON().Resources[logGroupId];
    expect(JSON.stringify(group.Properties.LogGroupName)).toContain('/aws/containerinsights/');
    expect(JSON.stringify(group.Properties.LogGroupName)).toContain('/application');
    eks.template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logGroupId },
      FilterPattern: '{ $.log_processed.event = "agent-stats" }',
      MetricTransformations: [
        Match.objectLike({ MetricName: 'TasksSucceeded', MetricValue: '$.log_processed.succeeded' }),
      ],
    });
    // The add-on's Fluent Bit finds the group made, with its retention.
    const addon = Object.values(eks.template.toJSON().Resources as Record<string, any>).find(
      (r) => r.Type === 'AWS::EKS::Addon',
    );
    expect(addon.DependsOn).toContain(logGroupId);
  });

  it("lets KEDA's operator read the queues' attributes and nothing else", () => {
    const kedaRole = eks.stack.node.findAll().find((c) => c.node.path.endsWith('/Compute/KedaRole'))!;
    const statements = roleStatements(eks.template, logicalIdOf(eks.stack, kedaRole));
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toBe('sqs:GetQueueAttributes');
    expect(statements[0].Resource).toHaveLength(resourcesOf(eks.template, 'AWS::SQS::Queue').length - 1);
    eks.template.hasResourceProperties('AWS::EKS::PodIdentityAssociation', {
      Namespace: 'keda',
      ServiceAccount: 'keda-operator',
    });
  });
});

describe('EksComputePlane on an existing cluster', () => {
  it('applies to the named cluster through a kubectl role given cluster admin by an access entry', () => {
    const { template, stack } = synthGrid({ ...BASE, compute: 'eks', eks_cluster_name: 'team-eks' }, { nag: true });

    template.resourceCountIs('AWS::EKS::Cluster', 0);
    template.resourceCountIs('AWS::EC2::VPC', 0);
    const entries = resourcesOf(template, 'AWS::EKS::AccessEntry');
    expect(entries).toHaveLength(1);
    expect(entries[0].Properties.ClusterName).toBe('team-eks');
    expect(entries[0].Properties.AccessPolicies).toHaveLength(1);
    expect(entries[0].Properties.AccessPolicies[0].AccessScope).toEqual({ Type: 'cluster' });
    expect(JSON.stringify(entries[0].Properties.AccessPolicies[0].PolicyArn)).toContain(
      ':eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy',
    );
    // The principal is the role the kubectl function runs as.
    const kubectl = resourcesOf(template, 'AWS::Lambda::Function').find((f) =>
      /kubectl/.test(f.Properties.Description ?? ''),
    );
    expect(entries[0].Properties.PrincipalArn).toEqual(kubectl.Properties.Role);
    template.hasResourceProperties('AWS::EKS::PodIdentityAssociation', { ClusterName: 'team-eks' });
    const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    expect(errors.map((e) => `${e.id}: ${JSON.stringify(e.entry.data).slice(0, 100)}`)).toEqual([]);
  });

  it('runs kubectl as the given role and makes no access entry', () => {
    const roleArn = 'arn:aws:iam::123456789012:role/eks-deployer';
    const { template } = synthGrid({
      ...BASE,
      compute: 'eks',
      eks_cluster_name: 'team-eks',
      eks_kubectl_role_arn: roleArn,
    });

    template.resourceCountIs('AWS::EKS::AccessEntry', 0);
    template.hasResourceProperties('AWS::Lambda::Function', { Role: roleArn });
  });
});

describe('-c compute and the EKS keys', () => {
  it.each([
    [{ compute: 'k8s' }, /-c compute=k8s: use ecs or eks/],
    [{ eks_cluster_name: 'team-eks' }, /-c eks_cluster_name: only applies with -c compute=eks/],
    [{ compute: 'eks', ec2_instance_type: 'c6i.large' }, /EC2 capacity is for ECS/],
    [
      { compute: 'eks', eks_kubectl_role_arn: 'arn:aws:iam::123456789012:role/x' },
      /only applies with -c eks_cluster_name/,
    ],
    [{ compute: 'eks', eks_kubectl_role_arn: 'role/x', eks_cluster_name: 'c' }, /not an IAM role ARN/],
  ])('rejects %p naming the fix', (context, message) => {
    expect(() => synthGrid({ ...BASE, ...context })).toThrow(ConfigError);
    expect(() => synthGrid({ ...BASE, ...context })).toThrow(message);
  });

  it('sizes the pod from -c cpu and -c memory (CPU units: 1024 = one vCPU)', () => {
    const { stack } = synthGrid({ ...BASE, compute: 'eks', cpu: '2048', memory: '4096' });
    const pod = resolvedManifests(stack).AgentDeployment.spec.template.spec;
    const agent = pod.containers[0].resources.requests;
    const lambdas = pod.initContainers
      .filter((c: any) => c.name.startsWith('lambda-'))
      .map((c: any) => c.resources.requests);
    const millis = (cpu: string): number => Number(cpu.replace(/m$/, ''));
    const mib = (memory: string): number => Number(memory.replace(/Mi$/, ''));
    expect(millis(agent.cpu) + lambdas.reduce((sum: number, r: any) => sum + millis(r.cpu), 0)).toBeLessThanOrEqual(
      2000,
    );
    expect(millis(agent.cpu) + lambdas.reduce((sum: number, r: any) => sum + millis(r.cpu), 0)).toBeGreaterThan(1990);
    expect(mib(agent.memory) + lambdas.reduce((sum: number, r: any) => sum + mib(r.memory), 0)).toBe(4096);
  });

  it('puts Spot agents on a NodePool of their own that allows Spot and consolidates only empty nodes', () => {
    const { stack } = synthGrid({ ...BASE, compute: 'eks', spot: 'true' });
    const manifests = resolvedManifests(stack);
    const pool = manifests.AgentNodePool;
    expect(pool.spec.template.spec.requirements).toContainEqual({
      key: 'karpenter.sh/capacity-type',
      operator: 'In',
      values: ['spot', 'on-demand'],
    });
    expect(pool.spec.disruption.consolidationPolicy).toBe('WhenEmpty');
    const pod = manifests.AgentDeployment.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'karpenter.sh/nodepool': pool.metadata.name });
  });
});
