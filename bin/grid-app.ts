// The grid stack of the CDK app, built from the app's context: shared by bin/app.ts and the deployment twin's app.
import { Aspects, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { gridSettingsFromContext, gridStackProps } from '../lib/infra/app-config';
import { HtcGridStack } from '../lib/infra/htc-grid-stack';

/**
 * Adds the grid stack that `-c config=<file>` and the `-c key=value` overrides describe to `app`, checked by cdk-nag
 * AwsSolutions. Throws `ConfigError` naming every problem with the context.
 */
export function addGridStack(app: App): HtcGridStack {
  const settings = gridSettingsFromContext((key) => app.node.tryGetContext(key));
  const stack = new HtcGridStack(app, settings.stackName, {
    ...gridStackProps(settings),
    stackName: settings.stackName,
    description: `htc-grid-cdk grid "${settings.config.gridName}"`,
    env: {
      account: process.env.CDK_DEFAULT_ACCOUNT,
      region: settings.config.region ?? process.env.CDK_DEFAULT_REGION,
    },
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}
