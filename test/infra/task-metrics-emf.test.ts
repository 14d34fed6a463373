// The agent's task metrics end to end: the EMF lines a real agent process (bin/agent.ts, on the emulators) writes are
// valid CloudWatch Embedded Metric Format, and the task metrics the synthesized stack's dashboard and alarms read are
// exactly those the agent emits (EMF) or its stats line feeds (the stack's log metric filters).
//
// The rules checked are those of the specification:
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
// (and lines written to stdout reach CloudWatch Logs through the awslogs driver, whose PutLogEvents needs no
// `x-amzn-logs-format` header for extraction:
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html).
//
// On EKS (-c compute=eks) the Observability add-on's Fluent Bit ships a pod's stdout with each JSON line merged under
// `log_processed` (the kubernetes filter's Merge_Log_Key in the add-on's chart, aws-observability/helm-charts
// charts/amazon-cloudwatch-observability/values.yaml): an EMF line there has no `_aws` at its root, so CloudWatch
// would extract nothing. The pod therefore sends EMF to the add-on's CloudWatch agent (its `emf` input, TCP 25888,
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_CloudWatch_Agent.html);
// here a TCP listener stands in for that agent and receives a real agent's lines.
import net from 'node:net';
import { openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import { GridClient } from '../../lib/client';
import { compileConfig, GRID_ENV, type GridConfig } from '../../lib/core';
import { CLOUDWATCH_AGENT_EMF_PORT, EksComputePlane, NODE_IP_ENV } from '../../lib/infra/eks-compute-plane';
import { expandVariables } from '../../twin/eks/pod-task';
import type { RieServer } from '../../twin/stand-ins/rie-server';
import { spawnAwsAgent, startPythonRie } from '../support/aws-agent';
import { createGridResources, startEmulators, type Emulators } from '../support/emulators';
import { PYTHON_WORKER, synthGrid } from './grid-app';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The units a MetricDefinition may name (the specification's list, that of CloudWatch's StandardUnit). */
const UNITS = new Set([
  'Seconds',
  'Microseconds',
  'Milliseconds',
  'Bytes',
  'Kilobytes',
  'Megabytes',
  'Gigabytes',
  'Terabytes',
  'Bits',
  'Kilobits',
  'Megabits',
  'Gigabits',
  'Terabits',
  'Percent',
  'Count',
  'Bytes/Second',
  'Kilobytes/Second',
  'Megabytes/Second',
  'Gigabytes/Second',
  'Terabytes/Second',
  'Bits/Second',
  'Kilobits/Second',
  'Megabits/Second',
  'Gigabits/Second',
  'Terabits/Second',
  'Count/Second',
  'None',
]);

/** A template or document value as text (a string as it is, anything else as JSON). */
const str = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The specification's rules for one log event; returns what it breaks (nothing for a valid EMF document). */
function emfViolations(line: string, now: number): string[] {
  const problems: string[] = [];
  if (Buffer.byteLength(line) > 1024 * 1024) problems.push('a log event is at most 1 MB');
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return ['the log event must be one JSON object, with nothing before or after it'];
  }
  if (!isObject(doc)) return ['the root node must be a JSON object'];
  const meta = doc._aws;
  if (!isObject(meta)) return ['the root node must hold an `_aws` metadata object'];
  const extra = Object.keys(meta).filter((k) => k !== 'Timestamp' && k !== 'CloudWatchMetrics');
  if (extra.length > 0) problems.push(`_aws has members the specification does not define: ${extra.join(', ')}`);
  if (typeof meta.Timestamp !== 'number' || !Number.isInteger(meta.Timestamp)) {
    problems.push('_aws.Timestamp must be a number: milliseconds since the epoch');
  } else if (meta.Timestamp < now - 14 * 24 * 3600_000 || meta.Timestamp > now + 2 * 3600_000) {
    problems.push('_aws.Timestamp must be within 2 weeks in the past and 2 hours in the future');
  }
  if (!Array.isArray(meta.CloudWatchMetrics)) return [...problems, '_aws.CloudWatchMetrics must be an array'];
  for (const directive of meta.CloudWatchMetrics) {
    if (!isObject(directive)) {
      problems.push('each MetricDirective must be an object');
      continue;
    }
    const unknown = Object.keys(directive).filter((k) => !['Namespace', 'Dimensions', 'Metrics'].includes(k));
    if (unknown.length > 0) problems.push(`a MetricDirective has unknown members: ${unknown.join(', ')}`);
    if (typeof directive.Namespace !== 'string' || directive.Namespace.length === 0 || directive.Namespace.length > 255)
      problems.push('Namespace must be a string of 1 to 255 characters');
    if (!Array.isArray(directive.Dimensions)) problems.push('Dimensions must be an array of DimensionSets');
    for (const set of Array.isArray(directive.Dimensions) ? directive.Dimensions : []) {
      if (!Array.isArray(set) || set.some((d) => typeof d !== 'string')) {
        problems.push('a DimensionSet must be an array of strings');
        continue;
      }
      if (set.length > 30) problems.push('a DimensionSet holds at most 30 dimension keys');
      for (const key of set as string[]) {
        const value = doc[key];
        if (typeof value !== 'string' || value.length === 0 || value.length > 1024)
          problems.push(`dimension ${key} must reference a root member holding a string of 1 to 1024 characters`);
      }
    }
    if (!Array.isArray(directive.Metrics) || directive.Metrics.length > 100)
      problems.push('Metrics must be an array of at most 100 MetricDefinitions');
    for (const metric of Array.isArray(directive.Metrics) ? directive.Metrics : []) {
      if (!isObject(metric) || typeof metric.Name !== 'string' || metric.Name.length === 0) {
        problems.push('a MetricDefinition must have a Name');
        continue;
      }
      const unknownMember = Object.keys(metric).filter((k) => !['Name', 'Unit', 'StorageResolution'].includes(k));
      if (unknownMember.length > 0) problems.push(`MetricDefinition ${metric.Name} has unknown members`);
      if (metric.Unit !== undefined && !UNITS.has(str(metric.Unit)))
        problems.push(`MetricDefinition ${metric.Name}: ${str(metric.Unit)} is not a unit`);
      if (metric.StorageResolution !== undefined && ![1, 60].includes(Number(metric.StorageResolution)))
        problems.push(`MetricDefinition ${metric.Name}: StorageResolution is 1 or 60`);
      const value = doc[metric.Name];
      const values = Array.isArray(value) ? value : [value];
      if (Array.isArray(value) && value.length > 100) problems.push(`${metric.Name} holds more than 100 values`);
      if (values.length === 0 || values.some((v) => typeof v !== 'number' || !Number.isFinite(v)))
        problems.push(`${metric.Name} must reference a root member holding a number or an array of numbers`);
    }
  }
  return problems;
}

/** A metric as CloudWatch keys it: namespace, name and the names of its dimensions. */
function metricKey(namespace: string, name: string, dimensions: readonly string[]): string {
  return `${namespace} ${name} [${[...dimensions].sort().join(',')}]`;
}

/** A template value with its tokens (Ref, Fn::GetAtt, ...) replaced by a placeholder: `Fn::Join`s become strings. */
function resolve(value: Json): Json {
  if (Array.isArray(value)) return value.map(resolve);
  if (!isObject(value)) return value;
  const join = value['Fn::Join'] as [string, Json[]] | undefined;
  if (join) return join[1].map((part) => (typeof part === 'string' ? part : 'TOKEN')).join(join[0]);
  if (Object.keys(value).some((k) => k === 'Ref' || k.startsWith('Fn::'))) return 'TOKEN';
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
}

interface StackMetrics {
  /** The agent's configuration, from its container's environment. */
  readonly agentConfig: JsonObject;
  /** The agent container's environment (plain values). */
  readonly agentEnv: Record<string, string>;
  /** Metrics of `namespace` the dashboard and the alarms read. */
  readonly read: Set<string>;
  /** Metric filters writing into `namespace`: metric key, filter pattern, value selector. */
  readonly filters: { key: string; pattern: string; value: string; logGroup: string }[];
}

/** What the synthesized stack reads and makes of task metrics, from its template only. */
function stackMetrics(
  template: JsonObject,
  namespace: (config: GridConfig) => string,
  /** The agent container's env when it is not in an ECS task definition (the EKS pod's). */
  podEnv?: Record<string, string>,
): StackMetrics & { ns: string } {
  const resources = Object.values(template.Resources as JsonObject).filter(isObject);
  const agentEnv =
    podEnv ??
    Object.fromEntries(
      resources
        .filter((r) => r.Type === 'AWS::ECS::TaskDefinition')
        .flatMap((r) => resolve((r.Properties as JsonObject).ContainerDefinitions ?? []) as JsonObject[])
        .filter((c) => ((c.Environment as JsonObject[] | undefined) ?? []).some((e) => e.Name === GRID_ENV.config))
        .flatMap((c) => c.Environment as JsonObject[])
        .map((e) => [str(e.Name), str(e.Value)]),
    );
  const agentConfig = JSON.parse(agentEnv[GRID_ENV.config]!) as JsonObject;
  const ns = namespace(compileConfig(agentConfig, 'template'));
  const read = new Set<string>();
  for (const r of resources.filter((x) => x.Type === 'AWS::CloudWatch::Dashboard')) {
    const body = JSON.parse(str(resolve((r.Properties as JsonObject).DashboardBody ?? null))) as {
      widgets: { properties?: { metrics?: Json[][] } }[];
    };
    for (const row of body.widgets.flatMap((w) => w.properties?.metrics ?? [])) {
      const first = row[0];
      if (isObject(first)) {
        // A math expression: SEARCH names its namespace, dimensions and metric name in its text.
        const search = /SEARCH\('\{([^,}]+)((?:,[^,}]+)*)\} MetricName="([^"]+)"'/.exec(str(first.expression));
        if (search && search[1] === ns) {
          read.add(metricKey(ns, search[3]!, search[2]!.split(',').filter(Boolean)));
        }
        continue;
      }
      const parts = row.filter((x) => !isObject(x)) as string[];
      if (parts[0] !== ns) continue;
      read.add(
        metricKey(
          ns,
          parts[1]!,
          parts.slice(2).filter((_, i) => i % 2 === 0),
        ),
      );
    }
  }
  for (const r of resources.filter((x) => x.Type === 'AWS::CloudWatch::Alarm')) {
    const props = r.Properties as JsonObject;
    const stats = ((props.Metrics as JsonObject[] | undefined) ?? [])
      .map((m) => (m.MetricStat as JsonObject | undefined)?.Metric as JsonObject | undefined)
      .filter((m): m is JsonObject => m !== undefined);
    if (props.MetricName) stats.push(props);
    for (const m of stats.filter((s) => s.Namespace === ns)) {
      const dims = ((m.Dimensions as JsonObject[] | undefined) ?? []).map((d) => str(d.Name));
      read.add(metricKey(ns, str(m.MetricName), dims));
    }
  }
  const filters = resources
    .filter((x) => x.Type === 'AWS::Logs::MetricFilter')
    .flatMap((r) => {
      const props = r.Properties as JsonObject;
      return (props.MetricTransformations as JsonObject[])
        .filter((t) => t.MetricNamespace === ns)
        .map((t) => ({
          key: metricKey(ns, str(t.MetricName), []),
          pattern: str(props.FilterPattern),
          value: str(t.MetricValue),
          logGroup: JSON.stringify(props.LogGroupName),
        }));
    });
  return { agentConfig, agentEnv, read, filters, ns };
}

/** Evaluates the one filter-pattern form the stack uses, `{ $.a.b = "text" }`; any other form fails the test. */
function filterMatches(pattern: string, event: JsonObject): boolean {
  const m = /^\{ \$\.([\w.]+) = "([^"]*)" \}$/.exec(pattern);
  if (!m) throw new Error(`filter pattern ${pattern} is not of the form this test evaluates: extend filterMatches`);
  return select(event, m[1]!) === m[2];
}

function select(event: JsonObject, selector: string): Json | undefined {
  let at: Json | undefined = event;
  for (const key of selector.replace(/^\$\./, '').split('.')) at = isObject(at) ? at[key] : undefined;
  return at;
}

let emulators: Emulators;
let backends: AwsBackends;
let rie: RieServer;
let resources: Awaited<ReturnType<typeof createGridResources>>;

/** What one agent process wrote: stdout's and stderr's lines, and those its EMF endpoint received. */
interface AgentRun {
  readonly stdout: string[];
  readonly stderr: string[];
  readonly received: string[];
}

/**
 * Runs bin/agent.ts with the environment the stack gives its container (quicker receives only), submits successes
 * and failures retried to their last attempt (3), and stops it: a stop flushes what it aggregated.
 */
async function runAgent(agentEnv: Record<string, string>, received: string[] = []): Promise<AgentRun> {
  const stackConfig = JSON.parse(agentEnv[GRID_ENV.config]!) as JsonObject;
  const config = compileConfig({ ...stackConfig, empty_task_queue_backoff_timeout_sec: 0.05 }, 'test');
  const emfEndpoint = agentEnv[GRID_ENV.emfAgentEndpoint];
  const agent = spawnAwsAgent({
    emulators,
    resources,
    config,
    rie,
    env: emfEndpoint ? { [GRID_ENV.emfAgentEndpoint]: emfEndpoint } : {},
  });
  try {
    const client = new GridClient({ config, ...backends, pollIntervalMs: 100 });
    const handle = await client.submit([
      { op: 'square', x: 2 },
      { op: 'square', x: 3 },
      { op: 'fail', why: 'no quote' },
      { op: 'fail', why: 'no curve' },
    ]);
    await handle.wait({ pollIntervalMs: 100, signal: AbortSignal.timeout(60_000) }).catch((e: unknown) => {
      throw new Error(`${str(e)}; agent stderr: ${agent.stderr()}`);
    });
  } finally {
    agent.child.kill('SIGTERM');
    await agent.exited;
  }
  const lines = (text: string) => text.split('\n').filter(Boolean);
  return { stdout: lines(agent.stdout()), stderr: lines(agent.stderr()), received };
}

/** A TCP listener standing in for the CloudWatch agent's `emf` input: one JSON document per line. */
async function emfListener(): Promise<{ server: net.Server; port: number; lines: string[] }> {
  const lines: string[] = [];
  const server = net.createServer((socket) => {
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts.filter(Boolean));
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, lines };
}

/** A log event as the EKS Observability add-on's Fluent Bit ships a JSON line: merged under `log_processed`. */
function asFluentBitEvent(line: string): JsonObject {
  return { log: line, stream: 'stdout', log_processed: JSON.parse(line) as Json, kubernetes: { pod_name: 'agent' } };
}

/** The task metrics an EMF line declares, with the number of values or the count it holds. */
function emittedMetrics(emfLines: readonly string[]): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of emfLines) {
    const doc = JSON.parse(line) as JsonObject;
    for (const directive of (doc._aws as JsonObject).CloudWatchMetrics as JsonObject[]) {
      for (const set of directive.Dimensions as string[][]) {
        for (const metric of directive.Metrics as JsonObject[]) {
          const key = metricKey(str(directive.Namespace), str(metric.Name), set);
          const v = doc[str(metric.Name)];
          values.set(key, (values.get(key) ?? 0) + (Array.isArray(v) ? v.length : Number(v)));
        }
      }
    }
  }
  return values;
}

/**
 * The dashboard and alarms of `stack` read exactly the task metrics the agent emitted as `emfLines` (those CloudWatch
 * extracts) or its stats lines feed through the stack's metric filters (`events`, as CloudWatch Logs stores them).
 */
function expectStackReadsAgentMetrics(
  stack: ReturnType<typeof stackMetrics>,
  emfLines: readonly string[],
  events: readonly JsonObject[],
): void {
  const values = emittedMetrics(emfLines);
  const emitted = new Set(values.keys());
  const fedByAgent = new Set(
    stack.filters
      .filter((f) => events.some((e) => filterMatches(f.pattern, e) && typeof select(e, f.value) === 'number'))
      .map((f) => f.key),
  );
  const fedByOthers = new Set(stack.filters.map((f) => f.key).filter((k) => !fedByAgent.has(k)));
  // Every metric the stack reads comes from the agent (or, for TasksFailed, the reaper's filter too).
  expect([...stack.read].filter((k) => !emitted.has(k) && !fedByAgent.has(k) && !fedByOthers.has(k))).toEqual([]);
  // Every metric the agent emits as EMF is read by the dashboard or an alarm.
  expect([...emitted].filter((k) => !stack.read.has(k)).sort()).toEqual([]);
  // And the run produced each kind: times, retries, failed attempts by error type, finished tasks.
  const ns = stack.ns;
  expect(values.get(metricKey(ns, 'TaskQueuedTime', []))).toBeGreaterThanOrEqual(4);
  expect(values.get(metricKey(ns, 'TaskRunTime', []))).toBeGreaterThanOrEqual(4);
  expect(values.get(metricKey(ns, 'TasksRetried', []))).toBe(4);
  expect(values.get(metricKey(ns, 'TaskAttemptsFailed', ['ErrorType']))).toBe(6);
  expect([...fedByAgent].sort()).toEqual([metricKey(ns, 'TasksFailed', []), metricKey(ns, 'TasksSucceeded', [])]);
}

const isEmf = (line: string): boolean => line.includes('"_aws"');
const jsonLines = (run: AgentRun): string[] => [...run.stdout, ...run.stderr].filter((l) => l.startsWith('{'));

let ecs: { stack: ReturnType<typeof stackMetrics>; run: AgentRun };
let eks: {
  stack: ReturnType<typeof stackMetrics>;
  run: AgentRun;
  plane: EksComputePlane;
  podEnv: JsonObject[];
  addonConfig: JsonObject;
};

beforeAll(async () => {
  const { taskMetricNamespace } = await import('../../lib/core');
  const namespace = (c: GridConfig) => taskMetricNamespace(c.gridName);
  const ecsSynth = synthGrid({ worker: PYTHON_WORKER });
  const ecsStack = stackMetrics(ecsSynth.template.toJSON(), namespace);
  const eksSynth = synthGrid({ worker: PYTHON_WORKER, compute: 'eks' });
  const plane = eksSynth.stack.grid.compute as EksComputePlane;
  const deployment = eksSynth.stack.resolve(plane.manifests.AgentDeployment) as {
    spec: { template: { spec: { containers: { name: string; env: JsonObject[] }[] } } };
  };
  const podEnv = deployment.spec.template.spec.containers.find((c) =>
    c.env.some((e) => e.name === GRID_ENV.config),
  )!.env;
  const addon = Object.values(eksSynth.template.findResources('AWS::EKS::Addon')).find(
    (r) => r.Properties.AddonName === 'amazon-cloudwatch-observability',
  );
  const addonConfig = JSON.parse(str(addon?.Properties.ConfigurationValues ?? '{}')) as JsonObject;

  emulators = await startEmulators();
  resources = await createGridResources(emulators);
  backends = openAwsBackends(resources, { clients: emulators.clients() });
  rie = await startPythonRie();
  ecs = { stack: ecsStack, run: await runAgent(ecsStack.agentEnv) };

  // The pod's env as the kubelet makes it: the node's IP from the downward API (this host, where the listener
  // stands in for the node's CloudWatch agent on its own port), then `$(NAME)` references expanded.
  const listener = await emfListener();
  try {
    const env: Record<string, string> = {};
    for (const e of podEnv) {
      const field = (e.valueFrom as JsonObject | undefined)?.fieldRef as JsonObject | undefined;
      if (field?.fieldPath === 'status.hostIP') env[str(e.name)] = '127.0.0.1';
      else if (e.value !== undefined) env[str(e.name)] = expandVariables(str(resolve(e.value)), env);
    }
    const endpoint = env[GRID_ENV.emfAgentEndpoint];
    if (endpoint !== `tcp://127.0.0.1:${CLOUDWATCH_AGENT_EMF_PORT}`) {
      throw new Error(`the EKS pod's ${GRID_ENV.emfAgentEndpoint} is ${endpoint}, not the node's CloudWatch agent`);
    }
    env[GRID_ENV.emfAgentEndpoint] = `tcp://127.0.0.1:${listener.port}`;
    const eksStack = stackMetrics(eksSynth.template.toJSON(), namespace, env);
    eks = { stack: eksStack, run: await runAgent(env, listener.lines), plane, podEnv, addonConfig };
  } finally {
    await new Promise((resolve) => listener.server.close(resolve));
  }
}, 240_000);

afterAll(async () => {
  await rie?.close();
  await backends?.close();
  await emulators?.stop();
});

describe('the task metrics of a real agent run on ECS (EMF on stdout, shipped by awslogs)', () => {
  test('every EMF line the agent wrote follows the Embedded Metric Format specification', () => {
    const emf = jsonLines(ecs.run).filter(isEmf);
    expect(emf.length).toBeGreaterThan(0);
    const now = Date.now();
    expect(emf.map((line) => emfViolations(line, now))).toEqual(emf.map(() => []));
  });

  test('the dashboard and alarms read exactly the task metrics the agent emits or its stats line feeds', () => {
    const lines = jsonLines(ecs.run);
    const events = lines.filter((l) => !isEmf(l)).map((l) => JSON.parse(l) as JsonObject);
    expectStackReadsAgentMetrics(ecs.stack, lines.filter(isEmf), events);
    const stats = events.filter((e) => e.event === 'agent-stats');
    expect(stats.reduce((n, e) => n + Number(e.succeeded), 0)).toBe(2);
    expect(stats.reduce((n, e) => n + Number(e.failed), 0)).toBe(2);
  });

  test('the ECS task sets no EMF endpoint: its agent writes EMF to stdout', () => {
    expect(ecs.stack.agentEnv[GRID_ENV.emfAgentEndpoint]).toBeUndefined();
    expect(ecs.run.received).toEqual([]);
  });
});

describe('the task metrics of a real agent run on EKS (EMF to the node CloudWatch agent)', () => {
  test('an EMF line on stdout would reach CloudWatch nested under log_processed, where nothing is extracted', () => {
    const stdoutEmf = jsonLines(ecs.run).filter(isEmf)[0]!;
    const event = JSON.stringify(asFluentBitEvent(stdoutEmf));
    expect(emfViolations(event, Date.now())).toEqual(['the root node must hold an `_aws` metadata object']);
  });

  test('the add-on CloudWatch agent listens for EMF, and the pod sends it there, to its node IP', () => {
    const collected = ((eks.addonConfig.agent as JsonObject).config as JsonObject).logs as JsonObject;
    expect(collected.metrics_collected).toEqual(
      expect.objectContaining({ emf: {}, kubernetes: expect.objectContaining({ enhanced_container_insights: true }) }),
    );
    expect(eks.podEnv).toEqual(
      expect.arrayContaining([
        { name: NODE_IP_ENV, valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: GRID_ENV.emfAgentEndpoint, value: `tcp://$(${NODE_IP_ENV}):${CLOUDWATCH_AGENT_EMF_PORT}` },
      ]),
    );
    // The node IP is defined before the endpoint refers to it (Kubernetes expands only earlier variables).
    const names = eks.podEnv.map((e) => e.name);
    expect(names.indexOf(NODE_IP_ENV)).toBeLessThan(names.indexOf(GRID_ENV.emfAgentEndpoint));
  });

  test('every EMF line reaches the endpoint, valid, and none goes to stdout', () => {
    expect(eks.run.received.length).toBeGreaterThan(0);
    const now = Date.now();
    expect(eks.run.received.map((line) => emfViolations(line, now))).toEqual(eks.run.received.map(() => []));
    expect(jsonLines(eks.run).filter(isEmf)).toEqual([]);
  });

  test('the dashboard and alarms read exactly the task metrics the agent sends or its stats line feeds', () => {
    // The stats lines as Fluent Bit ships them; the stack's filters select them under log_processed.
    const events = jsonLines(eks.run).map(asFluentBitEvent);
    expect(eks.plane.logJsonKey).toBe('log_processed');
    expectStackReadsAgentMetrics(eks.stack, eks.run.received, events);
  });
});
