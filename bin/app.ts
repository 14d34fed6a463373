#!/usr/bin/env node
// The CDK app: one grid stack from `-c config=<file>` and `-c key=value` overrides, checked by cdk-nag AwsSolutions.
import { App } from 'aws-cdk-lib';
import { addGridStack, isUserError, userErrorMessage } from './grid-app';

const app = new App();
try {
  addGridStack(app);
  app.synth();
} catch (err) {
  if (!isUserError(err)) throw err;
  process.stderr.write(`${userErrorMessage(err)}\n`);
  process.exit(1);
}
