// Finds a deployed grid from its CloudFormation stack outputs (live, or a `cdk deploy --outputs-file` JSON).
import fs from 'node:fs';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { ConfigError, type AwsGridResources } from '../../core';

/** Output keys of `HtcGridStack`; one source of truth for the stack and its readers. */
export const STACK_OUTPUTS = {
  tableName: 'TableName',
  queueUrls: 'QueueUrls',
  dataBucket: 'DataBucket',
  workerBucket: 'WorkerBucket',
  workerKey: 'WorkerKey',
  region: 'Region',
  clientConfig: 'ClientConfig',
  apiUrl: 'ApiUrl',
  noticeQueuePrefix: 'NoticeQueuePrefix',
} as const;

export interface DeployedGrid {
  readonly resources: AwsGridResources;
  /** The grid's configuration as clients need it (limits and defaults), when the stack publishes it. */
  readonly clientConfig?: Record<string, unknown>;
}

/** Reads the outputs of `stackName` with DescribeStacks (standard credentials and region). */
export async function describeStackOutputs(stackName: string, region?: string): Promise<Record<string, string>> {
  const client = new CloudFormationClient(region ? { region } : {});
  try {
    const answer = await client.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = answer.Stacks?.[0];
    if (!stack) throw new ConfigError([`stack ${stackName} was not found: deploy it with \`npx cdk deploy\` first`]);
    return Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
  } finally {
    client.destroy();
  }
}

/**
 * Reads a `cdk deploy --outputs-file` JSON (`{ "<stack>": { "<key>": "<value>" } }`); `stackName` picks one stack
 * when the file holds several.
 */
export function readOutputsFile(file: string, stackName?: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`cannot read the stack outputs file ${file}: ${(err as Error).message}`]);
  }
  if (typeof doc !== 'object' || doc === null) throw new ConfigError([`${file} is not a cdk outputs file`]);
  const stacks = doc as Record<string, Record<string, string>>;
  const names = Object.keys(stacks);
  const name = stackName ?? (names.length === 1 ? names[0] : undefined);
  if (!name || !stacks[name]) {
    throw new ConfigError([
      `${file} holds stacks ${names.join(', ') || '(none)'}: pass --stack <name> to pick ${stackName ? `one (not ${stackName})` : 'one'}`,
    ]);
  }
  return stacks[name];
}

/** Turns stack outputs into the resources a client or agent needs, naming any output that is missing. */
export function deployedGridFromOutputs(outputs: Readonly<Record<string, string>>): DeployedGrid {
  const missing = [STACK_OUTPUTS.tableName, STACK_OUTPUTS.queueUrls, STACK_OUTPUTS.dataBucket].filter(
    (k) => !outputs[k],
  );
  if (missing.length > 0) {
    throw new ConfigError(missing.map((k) => `stack output ${k} is missing: is this an htc-grid-cdk stack?`));
  }
  let queueUrls: unknown;
  let clientConfig: unknown;
  try {
    queueUrls = JSON.parse(outputs[STACK_OUTPUTS.queueUrls]!);
    const published = outputs[STACK_OUTPUTS.clientConfig];
    clientConfig = published ? JSON.parse(published) : undefined;
  } catch (err) {
    throw new ConfigError([`a stack output is not valid JSON: ${(err as Error).message}`]);
  }
  if (!Array.isArray(queueUrls) || !queueUrls.every((u) => typeof u === 'string')) {
    throw new ConfigError([`stack output ${STACK_OUTPUTS.queueUrls} must be a JSON array of queue URLs`]);
  }
  return {
    resources: {
      region: outputs[STACK_OUTPUTS.region] || undefined,
      tableName: outputs[STACK_OUTPUTS.tableName]!,
      queueUrls,
      dataBucket: outputs[STACK_OUTPUTS.dataBucket]!,
      workerBucket: outputs[STACK_OUTPUTS.workerBucket] || undefined,
      workerKey: outputs[STACK_OUTPUTS.workerKey] || undefined,
      noticeQueuePrefix: outputs[STACK_OUTPUTS.noticeQueuePrefix] || undefined,
    },
    clientConfig: clientConfig as Record<string, unknown> | undefined,
  };
}
