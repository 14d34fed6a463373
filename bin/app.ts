#!/usr/bin/env node
// The CDK app: one grid stack from `-c config=<file>` and `-c key=value` overrides, checked by cdk-nag AwsSolutions.
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError } from '../lib/core/errors';
import { gridSettingsFromContext, gridStackProps, type GridAppSettings } from '../lib/infra/app-config';
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
  ...gridStackProps(settings),
  stackName: settings.stackName,
  description: `htc-grid-cdk grid "${settings.config.gridName}"`,
  env: {
    account: process.env.CDK_DEFAULT_ACCOUNT,
    region: settings.config.region ?? process.env.CDK_DEFAULT_REGION,
  },
});
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
