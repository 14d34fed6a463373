// One twin run: deploy, start the ECS tasks and the reaper, submit tasks as the client, check every result, stop the
// tasks as ECS does (drain), simulate the scaling policies, and sum it all up.
import fs from 'node:fs';
import path from 'node:path';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { HtcGridError } from '../lib/core/errors';
import { TwinUnsupportedError } from './errors';
import type { EcsTask, TaskEvent } from './ecs/ecs-task';
import { checkApi, type ApiCheck } from './api-client-check';
import { checkResults, runHtcgrid, writeTasksFile, type ResultCheck } from './twin-client';
import { TwinDeployment } from './twin-deployment';
import { simulateScaling, type ScalingReport } from './scaling/scaling-simulation';

export interface TwinRunOptions {
  readonly repoRoot: string;
  readonly context: Readonly<Record<string, string>>;
  /** ECS tasks to run (the service's running count in the twin). */
  readonly agents: number;
  /** Tasks the client submits. */
  readonly tasks: number;
  /** The event of task `i`. */
  readonly event: (i: number) => unknown;
  /** Longest wait for all results. */
  readonly timeoutSec: number;
  readonly workDir?: string;
  readonly progress: (line: string) => void;
}

export interface TwinSummary {
  ok: boolean;
  failures: string[];
  stack?: string;
  tasks: number;
  succeeded: number;
  failed: number;
  lost: number;
  duplicated: number;
  iamCalls: number;
  iamDenials: number;
  portConflicts: number;
  ecsTasks: { task: string; stopReason?: string; containers: { name: string; exitCode?: number }[] }[];
  reaper: { invocations: number; errors: number; lastError?: string }[];
  /** The HTTP API (function URL) used from Python with a role granted only `api.grantInvoke`. */
  api?: ApiCheck;
  scaling?: ScalingReport;
  iam?: ReturnType<TwinDeployment['ledger']['summary']>;
  twinAdditions?: Record<string, string>;
  notModelled?: string[];
  workDir?: string;
  durationSec: number;
}

export async function runTwin(options: TwinRunOptions): Promise<TwinSummary> {
  const started = Date.now();
  const say = options.progress;
  const summary: TwinSummary = {
    ok: false,
    failures: [],
    tasks: options.tasks,
    succeeded: 0,
    failed: 0,
    lost: 0,
    duplicated: 0,
    iamCalls: 0,
    iamDenials: 0,
    portConflicts: 0,
    ecsTasks: [],
    reaper: [],
    durationSec: 0,
  };
  let twin: TwinDeployment | undefined;
  const portConflicts = new Set<string>();
  try {
    twin = await TwinDeployment.deploy({
      repoRoot: options.repoRoot,
      context: options.context,
      workDir: options.workDir,
      progress: say,
    });
    summary.stack = twin.stack.stackName;
    summary.workDir = twin.workDir;
    summary.twinAdditions = { ...twin.additions };
    summary.notModelled = twin.provisioned.notModelled;
    say(
      `deployed ${twin.stack.stackName}: ${twin.provisioned.tables.length} table(s), ${twin.provisioned.queues.length} queue(s), ${twin.provisioned.buckets.length} bucket(s); ${twin.bucketDeployments.join('; ')}`,
    );
    await twin.startScheduledFunctions((fn, line) => say(`[${fn}] ${line}`));
    await twin.startFunctionUrls((fn, line) => say(`[${fn}] ${line}`));
    const onEvent = (event: TaskEvent) => {
      if (event.kind === 'container-line') {
        const m = /listen tcp ([^:]+:\d+): bind: address already in use/.exec(event.line);
        if (m) portConflicts.add(`${event.task}/${event.container} ${m[1]}`);
        return;
      }
      if (event.kind === 'container-started') say(`${event.task}: ${event.container} started`);
      if (event.kind === 'container-stopped')
        say(`${event.task}: ${event.container} exited ${event.exitCode}${event.essential ? ' (essential)' : ''}`);
      if (event.kind === 'task-stopping') say(`${event.task}: stopping: ${event.reason}`);
    };
    const tasks: EcsTask[] = [];
    for (let i = 0; i < options.agents; i++) tasks.push(await twin.startTask(onEvent));
    const unexpectedStop = Promise.race(tasks.map((t) => t.stopped.then((s) => s)));

    const tasksFile = path.join(twin.workDir, 'tasks.jsonl');
    const resultsFile = path.join(twin.workDir, 'results.jsonl');
    writeTasksFile(tasksFile, options.tasks, options.event);
    const submitted = Date.now();
    say(
      `submitting ${options.tasks} task(s) as the client role (htcgrid submit --outputs ${path.relative(process.cwd(), twin.outputsFile)})`,
    );
    const client = runHtcgrid(
      options.repoRoot,
      ['submit', '--outputs', twin.outputsFile, '--tasks', tasksFile, '--wait', '--out', resultsFile],
      twin.roleEnv(twin.clientRoleId),
    );
    const progress = setInterval(() => void reportBacklog(twin!, say), 5000);
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), options.timeoutSec * 1000).unref());
    const outcome = await Promise.race([
      client.done.then((d) => ({ kind: 'client' as const, d })),
      unexpectedStop.then((s) => ({ kind: 'stopped' as const, s })),
      timeout.then(() => ({ kind: 'timeout' as const })),
    ]);
    clearInterval(progress);
    const clientSeconds = (Date.now() - submitted) / 1000;
    if (outcome.kind === 'stopped') {
      summary.failures.push(`${outcome.s.taskId.slice(0, 8)} stopped while tasks ran: ${outcome.s.reason}`);
      client.child.kill('SIGTERM');
    } else if (outcome.kind === 'timeout') {
      summary.failures.push(`not every task finished within ${options.timeoutSec}s`);
      client.child.kill('SIGTERM');
    } else if (outcome.d.code !== 0) {
      summary.failures.push(
        `htcgrid submit exited ${outcome.d.code}: ${outcome.d.stderr.trim().split('\n').slice(-5).join(' | ')}`,
      );
    }
    const check: ResultCheck = checkResults(resultsFile, options.tasks);
    Object.assign(summary, {
      succeeded: check.succeeded,
      failed: check.failed,
      lost: check.lost,
      duplicated: check.duplicated,
    });
    summary.failures.push(...check.firstFailures);

    if (outcome.kind === 'client') {
      const apiTasks = Math.min(options.tasks, 50);
      say(`submitting ${apiTasks} task(s) from Python through the HTTP API (function URL, the API client role)`);
      summary.api = await checkApi(twin, {
        repoRoot: options.repoRoot,
        tasks: apiTasks,
        event: options.event,
        timeoutSec: options.timeoutSec,
      });
      if (summary.api.skipped) say(`HTTP API not checked: ${summary.api.skipped}`);
      summary.failures.push(...summary.api.failures);
    }

    say('stopping the ECS tasks (SIGTERM: the agent drains, then the Lambda containers stop)');
    await Promise.all(tasks.map((t) => t.stop('ServiceScheduler: scaled in (twin run over)')));
    for (const t of tasks) {
      const stopped = await t.stopped;
      summary.ecsTasks.push({
        task: t.name,
        stopReason: stopped.reason,
        containers: stopped.containers.map((c) => ({ name: c.name, exitCode: c.exitCode })),
      });
      for (const c of t.containers) {
        const essentialOrInit = c.definition.essential || c.definition.name === 'fetch-worker';
        if (c.exitCode !== 0 && c.exitCode !== undefined && essentialOrInit) {
          summary.failures.push(
            `${t.name}/${c.name} exited ${c.exitCode}: ${c.recentOutput.split('\n').slice(-3).join(' | ')}`,
          );
        }
        if (c.exitCode === undefined) summary.failures.push(`${t.name}/${c.name} never ran (${stopped.reason})`);
      }
    }
    summary.reaper = twin.functions.map((f) => ({ ...f.stats }));
    for (const f of twin.functions)
      if (f.stats.errors > 0)
        summary.failures.push(`reaper failed ${f.stats.errors} time(s): ${f.stats.lastError ?? ''}`);

    if (twin.plane === 'eks') {
      say('scaling: the EKS plane scales with a KEDA ScaledObject, which the twin does not simulate');
      summary.notModelled = [...(summary.notModelled ?? []), 'KEDA ScaledObject (EKS scaling)'];
    } else {
      say('simulating the scaling policies and alarms of the template');
      summary.scaling = simulateScaling(twin.stack, {
        slots: twin.taskDefinition.containers.filter((c) => c.image.includes('/lambda/')).length,
        measuredTasksPerSecPerAgent: Math.max(
          0.1,
          check.succeeded / Math.max(1, clientSeconds) / Math.max(1, tasks.length),
        ),
      });
      summary.failures.push(...summary.scaling.failures);
    }
  } catch (error) {
    if (error instanceof TwinUnsupportedError) throw error;
    if (!(error instanceof HtcGridError))
      say(`unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    summary.failures.push(error instanceof Error ? error.message : String(error));
  } finally {
    if (twin) {
      summary.iam = twin.ledger.summary();
      summary.iamCalls = summary.iam.calls;
      summary.iamDenials = summary.iam.denied;
      for (const d of summary.iam.denials.slice(0, 5)) {
        summary.failures.push(
          `IAM denied ${d.caller}: ${d.action} on ${d.resource} (${d.reason}${d.statement ? ` by ${d.statement}` : ''})`,
        );
      }
      await twin.close();
    }
  }
  summary.portConflicts = portConflicts.size;
  for (const p of portConflicts)
    summary.failures.push(`port conflict: ${p} is taken (lambda-rie panics: "address already in use")`);
  if (summary.lost > 0) summary.failures.push(`${summary.lost} task(s) lost (no result)`);
  if (summary.duplicated > 0) summary.failures.push(`${summary.duplicated} task(s) reported more than once`);
  if (summary.succeeded < summary.tasks && summary.failures.length === 0)
    summary.failures.push(`${summary.tasks - summary.succeeded} task(s) did not succeed`);
  summary.ok = summary.failures.length === 0;
  summary.durationSec = Math.round((Date.now() - started) / 100) / 10;
  if (summary.workDir && summary.ok) fs.rmSync(summary.workDir, { recursive: true, force: true });
  return summary;
}

async function reportBacklog(twin: TwinDeployment, say: (line: string) => void): Promise<void> {
  let visible = 0;
  let inflight = 0;
  for (const name of twin.provisioned.queues) {
    const url = `${twin.additions.AWS_ENDPOINT_URL_SQS}/${twin.stack.env.account}/${name}`;
    const a = await twin.admin.sqs
      .send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      )
      .catch(() => undefined);
    visible += Number(a?.Attributes?.ApproximateNumberOfMessages ?? 0);
    inflight += Number(a?.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
  }
  say(`backlog: ${visible} queued, ${inflight} in flight`);
}
