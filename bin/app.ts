#!/usr/bin/env node
// The CDK app: one grid stack from `-c config=<file>` and `-c key=value` overrides, checked by cdk-nag AwsSolutions.
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { gridSettingsFromContext } from '../lib/infra/app-config';
import { HtcGridStack } from '../lib/infra/htc-grid-stack';

const app = new App();
const settings = gridSettingsFromContext((key) => app.node.tryGetContext(key));
new HtcGridStack(app, settings.stackName, {
  stackName: settings.stackName,
  description: `htc-grid-cdk grid "${settings.config.gridName}"`,
  env: {
    account: process.env.CDK_DEFAULT_ACCOUNT,
    region: settings.config.region ?? process.env.CDK_DEFAULT_REGION,
  },
  config: settings.config,
  workerDir: settings.workerDir,
  workerZip: settings.workerZip,
  taskCpu: settings.taskCpu,
  taskMemoryMiB: settings.taskMemoryMiB,
  spot: settings.spot,
  natGateways: settings.natGateways,
  targetBacklogPerAgent: settings.targetBacklogPerAgent,
});
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
