// The deployable stack: one HtcGrid plus the outputs a client needs (table, queues, buckets, worker key, region).
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { GRID_ENV } from '../core/grid-resources';
import { HtcGrid, type HtcGridProps } from './htc-grid';
import { suppressCdkInternals } from './nag-suppressions';

export type HtcGridStackProps = StackProps & HtcGridProps;

/** A stack holding one grid; its outputs are what `htcgrid --stack <name>` and the client SDK read. */
export class HtcGridStack extends Stack {
  readonly grid: HtcGrid;

  constructor(scope: Construct, id: string, props: HtcGridStackProps) {
    super(scope, id, props);
    this.grid = new HtcGrid(this, 'Grid', props);
    const r = this.grid.resources;
    const outputs: Record<string, { value: string; description: string }> = {
      TableName: { value: r.tableName, description: `Task table (${GRID_ENV.tableName})` },
      QueueUrls: {
        value: this.toJsonString(r.queueUrls),
        description: `Queue URLs, lowest priority first, JSON (${GRID_ENV.queueUrls})`,
      },
      DataBucket: { value: r.dataBucket, description: `Data-plane bucket (${GRID_ENV.dataBucket})` },
      WorkerBucket: { value: r.workerBucket ?? '', description: `Worker bucket (${GRID_ENV.workerBucket})` },
      WorkerKey: { value: r.workerKey ?? '', description: `Key of the deployed worker zip (${GRID_ENV.workerKey})` },
      Handler: { value: this.grid.worker.handler, description: 'Handler string the Lambda containers run' },
      Region: { value: this.region, description: `Region (${GRID_ENV.region})` },
      GridName: { value: props.config.gridName, description: 'Grid name' },
      DashboardName: { value: this.grid.monitoring.dashboard.dashboardName, description: 'CloudWatch dashboard' },
    };
    for (const [id, o] of Object.entries(outputs)) new CfnOutput(this, id, o);
    suppressCdkInternals(this);
  }
}
