// The deployment twin's "cdk deploy": synthesize, start the emulators behind recording proxies on the twin's bridge,
// create the template's tables, queues and buckets from its own properties, publish the assets, run the bucket
// deployment, resolve the template over the physical names, and hand out what ECS, Lambda and a client would get.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { EMULATOR_CREDENTIALS, startEmulators, type Emulators } from '../test/support/emulators';
import { CredentialsEndpoint } from './aws/credentials-endpoint';
import { dockerImageAssets, publishFileAssets, readAssetManifest, runBucketDeployments } from './aws/deploy-assets';
import { provisionServices, type ProvisionReport } from './aws/provision';
import { RecordingProxy } from './aws/recording-proxy';
import { TwinTemplateError } from './errors';
import { EcsTask, type TaskEvent } from './ecs/ecs-task';
import { refuseHiddenHostPaths } from './ecs/hidden-checkout';
import { cgroupRoot, checkHost } from './ecs/host-tools';
import { imageStandIn, type DockerImageAsset } from './ecs/images';
import { ECS_CREDENTIALS_ADDRESS, TwinBridge } from './ecs/task-network';
import { acquireTwinLock } from './host-lock';
import { parseTaskDefinition, type TaskDefinition } from './ecs/task-definition';
import { deploymentPod, podTaskDefinition } from './eks/pod-task';
import { AccessLedger, type CallerIdentity } from './iam/access-ledger';
import { templateResourcePolicies, templateRoles, type TemplateRole } from './iam/template-policies';
import { buildFunctionUrlHost, FunctionUrlFront, functionUrlResources, FunctionUrlRunner } from './lambda/function-url';
import { scheduledFunctions, scheduleTargets, ScheduledFunctionRunner } from './lambda/scheduled-function';
import { buildStandIns, type StandInFiles } from './stand-ins/build-stand-ins';
import { synthesize, type SynthResult } from './synth';
import { cdkPath, readTemplate, resourcesOfType, text, theResourceOfType } from './template/cfn-template';
import { DeployedStack } from './template/deployed-stack';
import { nameResources } from './template/physical-resources';
import { TWIN_API_CLIENT_ROLE_ID, TWIN_CLIENT_ROLE_ID } from './client-role';

export interface TwinDeployOptions {
  readonly repoRoot: string;
  /** `-c key=value` context for the app. */
  readonly context: Readonly<Record<string, string>>;
  /** Where the run keeps its files (synth output, logs, volumes); a fresh temporary folder by default. */
  readonly workDir?: string;
  readonly progress: (line: string) => void;
}

/** The twin's only additions to what ECS, Lambda and the client see: the emulators' endpoints. */
export type TwinAdditions = Readonly<{
  AWS_ENDPOINT_URL_DYNAMODB: string;
  AWS_ENDPOINT_URL_SQS: string;
  AWS_ENDPOINT_URL_S3: string;
}>;

export class TwinDeployment {
  readonly ledger = new AccessLedger();
  readonly tasks: EcsTask[] = [];
  readonly functions: ScheduledFunctionRunner[] = [];
  /** The template's function URLs (the GridApi), each a front that authenticates as AWS_IAM does. */
  readonly functionUrls: FunctionUrlFront[] = [];
  private readonly urlFunctions: FunctionUrlRunner[] = [];
  stack!: DeployedStack;
  synth!: SynthResult;
  taskDefinition!: TaskDefinition;
  /** Where the template runs its agents: an ECS task definition, or an EKS Deployment's pod (run as a task). */
  plane: 'ecs' | 'eks' = 'ecs';
  /** The role the agent unit acts as: the ECS task role, or the role EKS Pod Identity gives the pod. */
  private unitRoleId: string | undefined;
  provisioned!: ProvisionReport;
  outputsFile!: string;
  additions!: TwinAdditions;
  bucketDeployments: string[] = [];
  private emulators: Emulators | undefined;
  private bridge: TwinBridge | undefined;
  private proxies: RecordingProxy[] = [];
  private credentials: CredentialsEndpoint | undefined;
  private callers: CallerIdentity[] = [];
  private roles = new Map<string, TemplateRole>();
  private standIns!: StandInFiles;
  private dockerAssets: DockerImageAsset[] = [];
  private adminClients: { dynamodb: DynamoDBClient; sqs: SQSClient; s3: S3Client } | undefined;
  private cgroupBase = '';
  private closed = false;
  /** Frees the machine for the next twin (the credentials address). */
  private releaseHost: () => void = () => undefined;

  private constructor(
    private readonly options: TwinDeployOptions,
    readonly workDir: string,
  ) {}

  static async deploy(options: TwinDeployOptions): Promise<TwinDeployment> {
    await checkHost();
    const release = await acquireTwinLock(options.progress);
    const workDir = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'htcgrid-twin-'));
    const twin = new TwinDeployment(options, workDir);
    twin.releaseHost = release;
    try {
      await twin.deployAll();
      return twin;
    } catch (error) {
      await twin.close();
      throw error;
    }
  }

  /** The role logical id of a caller label, e.g. the task role. */
  role(logicalId: string): TemplateRole | undefined {
    return this.roles.get(logicalId);
  }

  /** Environment of a process acting as a template role (client, Lambda): its credentials, region, endpoints. */
  roleEnv(roleLogicalId: string): Record<string, string> {
    const caller = this.callers.find((c) => c.role?.logicalId === roleLogicalId);
    if (!caller) throw new TwinTemplateError(`no credentials for role ${roleLogicalId}`);
    return {
      AWS_ACCESS_KEY_ID: caller.accessKeyId,
      AWS_SECRET_ACCESS_KEY: caller.secretAccessKey,
      AWS_SESSION_TOKEN: `twin-session-token-${caller.accessKeyId}`,
      AWS_REGION: this.stack.env.region,
      AWS_DEFAULT_REGION: this.stack.env.region,
      ...this.additions,
    };
  }

  /** The client role the twin app adds (what `HtcGrid.grantSubmit` grants a user). */
  get clientRoleId(): string {
    return this.twinAppRole(TWIN_CLIENT_ROLE_ID);
  }

  /** The HTTP API client role the twin app adds (what `HtcGrid.api.grantInvoke` grants a user). */
  get apiClientRoleId(): string {
    return this.twinAppRole(TWIN_API_CLIENT_ROLE_ID);
  }

  private twinAppRole(constructId: string): string {
    const found = [...this.roles.keys()].find((id) => cdkPath(this.stack.resource(id))?.includes(`/${constructId}/`));
    if (!found) throw new TwinTemplateError(`the twin app's ${constructId} is missing from the template`);
    return found;
  }

  /** Starts one ECS task of the service's task definition. */
  async startTask(onEvent: (event: TaskEvent) => void): Promise<EcsTask> {
    const index = this.tasks.length;
    const taskCaller = this.callers.find((c) => c.role?.logicalId === this.unitRoleId);
    if (!taskCaller) throw new TwinTemplateError(`the ${this.plane} agent unit has no role of the template`);
    const task = new EcsTask({
      index,
      definition: this.taskDefinition,
      images: (c) =>
        imageStandIn(c.image, {
          repoRoot: this.options.repoRoot,
          standIns: this.standIns,
          dockerAssets: this.dockerAssets,
        }),
      bridge: this.bridge!,
      dir: path.join(this.workDir, 'tasks', `task-${index}`),
      cgroupRoot: this.cgroupBase,
      injectedEnv: () => ({
        // What ECS (Fargate) puts in every container; an EKS pod gets the same credentials from the Pod Identity
        // agent (AWS_CONTAINER_CREDENTIALS_FULL_URI): the SDKs read both alike.
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: this.credentials!.grant({
          accessKeyId: taskCaller.accessKeyId,
          secretAccessKey: taskCaller.secretAccessKey,
          roleArn: taskCaller.role!.arn,
        }),
        AWS_DEFAULT_REGION: this.stack.env.region,
        AWS_REGION: this.stack.env.region,
        ...(this.plane === 'ecs' ? { AWS_EXECUTION_ENV: 'AWS_ECS_FARGATE' } : {}),
      }),
      twinEnv: this.additions,
      onEvent,
    });
    this.tasks.push(task);
    await task.start();
    return task;
  }

  /** Starts the template's scheduled functions (the reaper) at their rates. */
  async startScheduledFunctions(log: (fn: string, line: string) => void): Promise<void> {
    for (const fn of scheduledFunctions(this.stack)) {
      const runner = new ScheduledFunctionRunner(fn, {
        stack: this.stack,
        dir: path.join(this.workDir, 'functions'),
        adminS3: this.adminClients!.s3,
        env: this.roleEnv(fn.roleId),
        repoRoot: this.options.repoRoot,
        log: (line) => log(fn.functionId, line),
      });
      await runner.start();
      this.functions.push(runner);
    }
  }

  /** Starts the functions behind the template's function URLs (the GridApi), each in a process of its own. */
  async startFunctionUrls(log: (fn: string, line: string) => void): Promise<void> {
    if (this.functionUrls.length === 0) return;
    const hostScript = await buildFunctionUrlHost(this.options.repoRoot, path.join(this.workDir, 'stand-ins'));
    for (const front of this.functionUrls) {
      const runner = new FunctionUrlRunner(front, {
        stack: this.stack,
        dir: path.join(this.workDir, 'functions'),
        hostScript,
        adminS3: this.adminClients!.s3,
        roleEnv: (roleId) => this.roleEnv(roleId),
        log: (line) => log(front.resource.functionId, line),
      });
      this.urlFunctions.push(runner);
      await runner.start();
    }
  }

  /** Admin clients straight to the emulators (not recorded): the twin's own reads, like CloudWatch's. */
  get admin(): { dynamodb: DynamoDBClient; sqs: SQSClient; s3: S3Client } {
    return this.adminClients!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.functions) await fn.stop().catch(() => undefined);
    for (const fn of this.urlFunctions) await fn.stop().catch(() => undefined);
    for (const front of this.functionUrls) await front.close().catch(() => undefined);
    await Promise.all(this.tasks.map((t) => t.stop('twin shutting down').catch(() => undefined)));
    await this.credentials?.close().catch(() => undefined);
    for (const p of this.proxies) await p.close().catch(() => undefined);
    await this.bridge?.remove();
    if (this.adminClients) for (const c of Object.values(this.adminClients)) c.destroy();
    await this.emulators?.stop().catch(() => undefined);
    try {
      fs.rmdirSync(this.cgroupBase);
    } catch {
      // Busy or never made.
    }
    this.releaseHost();
  }

  private async deployAll(): Promise<void> {
    const say = this.options.progress;
    say('synthesizing the app (cdk synth)');
    this.synth = await synthesize({
      repoRoot: this.options.repoRoot,
      outdir: path.join(this.workDir, 'cdk.out'),
      context: this.options.context,
    });
    const template = readTemplate(this.synth.templateFile);
    this.stack = new DeployedStack(template, this.synth.stackName);
    say('starting DynamoDB Local, the SQS emulator and s3rver');
    this.emulators = await startEmulators();
    const admin = this.emulators.clients();
    this.adminClients = admin;
    this.bridge = await TwinBridge.create(String(process.pid));
    this.cgroupBase = path.join(cgroupRoot(), `htcgrid-twin-${process.pid}`);
    fs.mkdirSync(this.cgroupBase, { recursive: true });
    const arn = { partition: this.stack.env.partition, region: this.stack.env.region, account: this.stack.env.account };
    const host = this.bridge.hostAddress;
    const proxy = (service: 'dynamodb' | 'sqs' | 's3' | 'sts', upstream?: string) =>
      RecordingProxy.start({
        service,
        host,
        upstream,
        ledger: this.ledger,
        arn,
        upstreamAccessKeyId: service === 's3' ? EMULATOR_CREDENTIALS.accessKeyId : undefined,
        sts: (action, key) => this.stsAnswer(action, key),
        onError: (error, request) =>
          say(`proxy error on ${request}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`),
      });
    const [ddb, sqs, s3, sts] = await Promise.all([
      proxy('dynamodb', this.emulators.endpoints.dynamodb),
      proxy('sqs', this.emulators.endpoints.sqs),
      proxy('s3', this.emulators.endpoints.s3),
      proxy('sts'),
    ]);
    this.proxies = [ddb, sqs, s3, sts];
    this.additions = {
      AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
    };
    this.credentials = await CredentialsEndpoint.start(ECS_CREDENTIALS_ADDRESS);

    for (const url of functionUrlResources(this.stack.template)) {
      this.functionUrls.push(await FunctionUrlFront.start(url, host, this.ledger));
    }
    say('creating the tables, queues and buckets from the template');
    nameResources(this.stack, {
      sqsOrigin: sqs.endpoint,
      functionUrls: Object.fromEntries(this.functionUrls.map((f) => [f.resource.urlId, f.url])),
    });
    this.provisioned = await provisionServices(this.stack, admin);
    this.configureCallers();

    say('publishing the file assets (cdk-assets)');
    await publishFileAssets({
      manifestFile: this.synth.assetManifestFile,
      stack: this.stack,
      adminS3: admin.s3,
      repoRoot: this.options.repoRoot,
      onOutput: (line) => say(`  ${line}`),
      env: {
        AWS_ACCESS_KEY_ID: DEPLOYER.accessKeyId,
        AWS_SECRET_ACCESS_KEY: DEPLOYER.secretAccessKey,
        AWS_REGION: this.stack.env.region,
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ENDPOINT_URL_STS: sts.endpoint,
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    });
    this.bucketDeployments = await runBucketDeployments(this.stack, (roleId) => this.s3ForRole(roleId, s3.endpoint));
    this.configureCallers();

    const manifest = readAssetManifest(this.synth.assetManifestFile);
    this.dockerAssets = dockerImageAssets(manifest, path.dirname(this.synth.assetManifestFile), this.stack);
    this.loadAgentUnit();
    refuseHiddenHostPaths(this.taskDefinition, [
      { what: 'the checkout', path: this.options.repoRoot },
      { what: 'node', path: process.execPath },
    ]);
    this.outputsFile = path.join(this.workDir, 'outputs.json');
    fs.writeFileSync(this.outputsFile, JSON.stringify({ [this.stack.stackName]: this.resolveOutputs() }, null, 2));
    say('bundling the image stand-ins');
    this.standIns = await buildStandIns(this.options.repoRoot, path.join(this.workDir, 'stand-ins'));
  }

  /** The agent unit: the ECS task definition, or else the pod of the EKS plane's Deployment manifest. */
  private loadAgentUnit(): void {
    if (resourcesOfType(this.stack.template, 'AWS::ECS::TaskDefinition').length > 0) {
      const [taskDefId] = theResourceOfType(this.stack.template, 'AWS::ECS::TaskDefinition');
      this.taskDefinition = parseTaskDefinition(this.stack.properties(taskDefId));
      this.unitRoleId = roleIdOf(this.taskDefinitionRoleRef('TaskRoleArn'));
      return;
    }
    const deployments = resourcesOfType(this.stack.template, 'Custom::AWSCDK-EKS-KubernetesResource')
      .flatMap(([, r]) => JSON.parse(this.stack.resolveString(r.Properties?.Manifest)) as Record<string, unknown>[])
      .filter((m) => m.kind === 'Deployment');
    if (deployments.length !== 1) {
      throw new TwinTemplateError(
        `the template holds no ECS task definition and ${deployments.length} Kubernetes Deployments; the twin runs one`,
      );
    }
    const deployment = deployments[0]!;
    this.plane = 'eks';
    this.taskDefinition = podTaskDefinition(deployment);
    const serviceAccount = deploymentPod(deployment).spec.serviceAccountName;
    const namespace = (deployment.metadata as { namespace?: string } | undefined)?.namespace ?? 'default';
    const association = resourcesOfType(this.stack.template, 'AWS::EKS::PodIdentityAssociation').find(
      ([, r]) => r.Properties?.ServiceAccount === serviceAccount && r.Properties?.Namespace === namespace,
    );
    if (!association) {
      throw new TwinTemplateError(`no Pod Identity association for service account ${namespace}/${serviceAccount}`);
    }
    this.unitRoleId = roleIdOf(association[1].Properties?.RoleArn);
  }

  private taskDefinitionRoleRef(key: 'TaskRoleArn' | 'ExecutionRoleArn'): unknown {
    const [id, resource] = theResourceOfType(this.stack.template, 'AWS::ECS::TaskDefinition');
    void id;
    return resource.Properties?.[key];
  }

  /** Gives every template role its own fake credentials; roles whose policies do not resolve yet stay unchecked. */
  private configureCallers(): void {
    const roles = new Map<string, TemplateRole>();
    try {
      for (const [id, role] of templateRoles(this.stack)) roles.set(id, role);
    } catch {
      // Some policy needs a value not known yet (a custom resource's attribute): resolve them one by one.
      for (const id of Object.keys(this.stack.template.Resources).filter(
        (k) => this.stack.template.Resources[k]!.Type === 'AWS::IAM::Role',
      )) {
        try {
          const single = templateRoles(this.stack, [id]).get(id);
          if (single) roles.set(id, single);
        } catch {
          // Resolved later.
        }
      }
    }
    this.roles = roles;
    const labels = this.roleLabels();
    const callers: CallerIdentity[] = [DEPLOYER, FILE_PUBLISHER];
    for (const id of Object.keys(this.stack.template.Resources).filter(
      (k) => this.stack.template.Resources[k]!.Type === 'AWS::IAM::Role',
    )) {
      const key = `ASIA${createHash('sha256').update(id).digest('hex').slice(0, 16).toUpperCase()}`;
      const existing = this.callers.find((c) => c.accessKeyId === key);
      callers.push({
        label: labels.get(id) ?? id,
        accessKeyId: key,
        secretAccessKey: existing?.secretAccessKey ?? randomBytes(20).toString('base64'),
        role: roles.get(id),
      });
    }
    this.callers = callers;
    this.ledger.configure(callers, templateResourcePolicies(this.stack));
  }

  private roleLabels(): Map<string, string> {
    const labels = new Map<string, string>();
    const taskDefs = Object.values(this.stack.template.Resources).filter((r) => r.Type === 'AWS::ECS::TaskDefinition');
    for (const td of taskDefs) {
      const task = roleIdOf(td.Properties?.TaskRoleArn);
      const exec = roleIdOf(td.Properties?.ExecutionRoleArn);
      if (task) labels.set(task, 'task role');
      if (exec) labels.set(exec, 'task execution role');
    }
    for (const [, r] of resourcesOfType(this.stack.template, 'AWS::EKS::PodIdentityAssociation')) {
      const role = roleIdOf(r.Properties?.RoleArn);
      if (role) labels.set(role, `pod role of ${text(r.Properties?.Namespace)}/${text(r.Properties?.ServiceAccount)}`);
    }
    for (const fn of scheduleTargets(this.stack.template))
      if (fn.roleId) labels.set(fn.roleId, `${fn.functionId} role (scheduled)`);
    for (const url of functionUrlResources(this.stack.template))
      labels.set(FunctionUrlRunner.roleOf(this.stack, url.functionId), `${url.functionId} role (function URL)`);
    for (const [, r] of Object.entries(this.stack.template.Resources)) {
      if (r.Type !== 'Custom::CDKBucketDeployment') continue;
      const fnId = (r.Properties?.ServiceToken as { 'Fn::GetAtt'?: [string] } | undefined)?.['Fn::GetAtt']?.[0];
      const role = fnId ? roleIdOf(this.stack.template.Resources[fnId]?.Properties?.Role) : undefined;
      if (role) labels.set(role, 'bucket deployment role');
    }
    for (const id of Object.keys(this.stack.template.Resources)) {
      const at = cdkPath(this.stack.template.Resources[id]!);
      if (at?.includes(`/${TWIN_CLIENT_ROLE_ID}/`)) labels.set(id, 'client role');
      if (at?.includes(`/${TWIN_API_CLIENT_ROLE_ID}/`)) labels.set(id, 'API client role');
    }
    return labels;
  }

  private s3ForRole(roleId: string, endpoint: string): S3Client {
    const caller =
      this.callers.find((c) => c.role?.logicalId === roleId) ?? this.callers.find((c) => c.label === roleId);
    const key = `ASIA${createHash('sha256').update(roleId).digest('hex').slice(0, 16).toUpperCase()}`;
    const found = caller ?? this.callers.find((c) => c.accessKeyId === key);
    if (!found) throw new TwinTemplateError(`no credentials for role ${roleId}`);
    return new S3Client({
      region: this.stack.env.region,
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: found.accessKeyId, secretAccessKey: found.secretAccessKey },
    });
  }

  /** STS as `cdk-assets` meets it: the caller's identity, and the bootstrap file-publishing role assumed. */
  private stsAnswer(action: string, accessKeyId: string | undefined): string {
    const account = this.stack.env.account;
    const ns = 'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"';
    if (action === 'AssumeRole') {
      const expiration = new Date(Date.now() + 3600_000).toISOString();
      return `<AssumeRoleResponse ${ns}><AssumeRoleResult><Credentials><AccessKeyId>${FILE_PUBLISHER.accessKeyId}</AccessKeyId><SecretAccessKey>${FILE_PUBLISHER.secretAccessKey}</SecretAccessKey><SessionToken>twin</SessionToken><Expiration>${expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROATWIN:cdk-assets</AssumedRoleId><Arn>arn:aws:sts::${account}:assumed-role/cdk-file-publishing-role/cdk-assets</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>twin</RequestId></ResponseMetadata></AssumeRoleResponse>`;
    }
    const who = this.ledger.callerOf(accessKeyId)?.label ?? 'user';
    return `<GetCallerIdentityResponse ${ns}><GetCallerIdentityResult><Arn>arn:aws:iam::${account}:user/${who.replace(/\W+/g, '-')}</Arn><UserId>AIDATWIN</UserId><Account>${account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>twin</RequestId></ResponseMetadata></GetCallerIdentityResponse>`;
  }

  private resolveOutputs(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, output] of Object.entries(this.stack.template.Outputs ?? {})) {
      out[key] = this.stack.resolveString(output.Value, `Outputs.${key}`);
    }
    return out;
  }
}

/** The user running `cdk deploy` and the bootstrap stack's file-publishing role: not in the template, not checked. */
const DEPLOYER: CallerIdentity = {
  label: 'cdk deploy (your credentials)',
  accessKeyId: 'AKIATWINDEPLOYER0001',
  secretAccessKey: 'twin-deployer-secret',
};
const FILE_PUBLISHER: CallerIdentity = {
  label: 'cdk-assets (bootstrap file-publishing role)',
  accessKeyId: 'ASIATWINFILEPUBLISH',
  secretAccessKey: 'twin-file-publishing-secret',
};

function roleIdOf(value: unknown): string | undefined {
  return (value as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt']?.[0];
}
