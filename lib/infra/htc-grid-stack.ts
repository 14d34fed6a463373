// The deployable stack: one HtcGrid plus the outputs a client needs (table, queues, buckets, worker key, region).
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { STACK_OUTPUTS } from '../backends/aws/stack-outputs';
import { GRID_ENV } from '../core/grid-resources';
import { clientConfigurationDocument } from './client-configuration';
import { HtcGrid, type HtcGridProps } from './htc-grid';
import { suppressCdkInternals } from './nag-suppressions';

export interface HtcGridStackProps extends StackProps, HtcGridProps {
  /**
   * ARN of an existing SNS topic the grid's alarms notify (instead of `alarmTopic`).
   * @default - `alarmTopic`, or none
   */
  readonly alarmTopicArn?: string;
}

/** A stack holding one grid; its outputs are what `htcgrid --stack <name>` and the client SDK read. */
export class HtcGridStack extends Stack {
  readonly grid: HtcGrid;

  constructor(scope: Construct, id: string, props: HtcGridStackProps) {
    super(scope, id, props);
    const alarmTopic =
      props.alarmTopic ??
      (props.alarmTopicArn ? sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn) : undefined);
    this.grid = new HtcGrid(this, 'Grid', { ...props, alarmTopic });
    const r = this.grid.resources;
    const outputs: Record<string, { value: string; description: string }> = {
      [STACK_OUTPUTS.tableName]: { value: r.tableName, description: `Task table (${GRID_ENV.tableName})` },
      [STACK_OUTPUTS.queueUrls]: {
        value: this.toJsonString(r.queueUrls),
        description: `Queue URLs, lowest priority first, JSON (${GRID_ENV.queueUrls})`,
      },
      [STACK_OUTPUTS.dataBucket]: { value: r.dataBucket, description: `Data-plane bucket (${GRID_ENV.dataBucket})` },
      [STACK_OUTPUTS.workerBucket]: {
        value: r.workerBucket ?? '',
        description: `Worker bucket (${GRID_ENV.workerBucket})`,
      },
      [STACK_OUTPUTS.workerKey]: {
        value: r.workerKey ?? '',
        description: `Key of the deployed worker zip (${GRID_ENV.workerKey})`,
      },
      Handler: { value: this.grid.worker.handler, description: 'Handler string the Lambda containers run' },
      [STACK_OUTPUTS.region]: { value: this.region, description: `Region (${GRID_ENV.region})` },
      GridName: { value: props.config.gridName, description: 'Grid name' },
      DashboardName: { value: this.grid.monitoring.dashboard.dashboardName, description: 'CloudWatch dashboard' },
      [STACK_OUTPUTS.apiUrl]: {
        value: this.grid.api.url,
        description: 'HTTP API (function URL, AWS_IAM: sign with SigV4 for the service lambda); Grid.connect reads it',
      },
      [STACK_OUTPUTS.noticeQueuePrefix]: {
        value: r.noticeQueuePrefix ?? '',
        description: 'Name prefix of the completion notice queue each client creates (grantSubmit grants it)',
      },
      [STACK_OUTPUTS.clientConfig]: {
        value: JSON.stringify(clientConfigurationDocument(props.config.document)),
        description: 'Limits and defaults clients apply when submitting (htcgrid --stack reads it)',
      },
    };
    for (const [id, o] of Object.entries(outputs)) new CfnOutput(this, id, o);
    suppressCdkInternals(this);
  }
}
