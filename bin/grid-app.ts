// The grid stack of the CDK app, built from the app's context: shared by bin/app.ts and the deployment twin's app.
import { Annotations, Aspects, Errors, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { HtcGridError } from '../lib/core/errors';
import { gridSettingsFromContext, gridStackProps } from '../lib/infra/app-config';
import { HtcGridStack } from '../lib/infra/htc-grid-stack';

/**
 * Adds the grid stack that `-c config=<file>` and the `-c key=value` overrides describe to `app`, checked by cdk-nag
 * AwsSolutions. Throws `ConfigError` naming every problem with the context.
 */
export function addGridStack(app: App): HtcGridStack {
  const settings = gridSettingsFromContext(app.node.getAllContext() as Record<string, unknown>);
  const stack = new HtcGridStack(app, settings.stackName, {
    ...gridStackProps(settings),
    stackName: settings.stackName,
    description: `htc-grid-cdk grid "${settings.config.gridName}"`,
    env: {
      account: process.env.CDK_DEFAULT_ACCOUNT,
      region: settings.config.region ?? process.env.CDK_DEFAULT_REGION,
    },
  });
  for (const note of settings.ignored) Annotations.of(stack).addWarningV2('htcgrid:ignoredContextKey', note);
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}

/** A mistake the user fixes (bad -c values, a handler missing from the zip), as opposed to a bug: no stack trace. */
export function isUserError(err: unknown): err is Error {
  // aws-cdk-lib reports invalid construct input (a failed worker bundling included) as a ValidationError.
  return err instanceof HtcGridError || Errors.isValidationError(err);
}

/** The message, without aws-cdk-lib's wrapping of a bundling error (where its scratch output lies). */
export function userErrorMessage(err: Error): string {
  const bundling = /: BundlingError: ([\s\S]*)$/.exec(err.message);
  return bundling ? `worker: ${bundling[1]}` : err.message;
}
