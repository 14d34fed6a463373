#!/usr/bin/env node
// The CDK app: one grid stack from `-c config=<file>` and `-c key=value` overrides, checked by cdk-nag AwsSolutions.
import { App } from 'aws-cdk-lib';
import { ConfigError } from '../lib/core/errors';
import { addGridStack } from './grid-app';

const app = new App();
try {
  addGridStack(app);
} catch (err) {
  // A configuration mistake is the user's to fix: show the problems, not a stack trace.
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
