#!/usr/bin/env node
// The CDK app: one grid stack from `-c config=<file>` and `-c key=value` overrides, checked by cdk-nag AwsSolutions.
import { App, Aspects, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError } from '../lib/core/errors';
import { gridSettingsFromContext, type GridAppSettings } from '../lib/infra/app-config';
import { HtcGridStack } from '../lib/infra/htc-grid-stack';

const app = new App();
let settings: GridAppSettings;
try {
  settings = gridSettingsFromContext((key) => app.node.tryGetContext(key));
} catch (err) {
  // A configuration mistake is the user's to fix: show the problems, not a stack trace.
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
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
  ec2Capacity: settings.ec2InstanceType
    ? {
        instanceType: new ec2.InstanceType(settings.ec2InstanceType),
        maxInstances: settings.ec2MaxInstances,
        spot: settings.spot,
      }
    : undefined,
  natGateways: settings.natGateways,
  targetBacklogPerAgent: settings.targetBacklogPerAgent,
  reaperEntry: settings.reaperEntry,
  removalPolicy: settings.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
});
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
