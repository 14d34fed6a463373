// The CDK app the twin synthesizes: the grid stack exactly as bin/app.ts builds it (same function), plus one role
// standing in for a user's client, granted what `HtcGrid.grantSubmit` grants, so the client's calls are checked too,
// and one for a user of the HTTP API, granted only `api.grantInvoke`.
import { App } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { addGridStack, isUserError, userErrorMessage } from '../bin/grid-app';
import { TWIN_API_CLIENT_ROLE_ID, TWIN_CLIENT_ROLE_ID } from './client-role';

const app = new App();
try {
  const stack = addGridStack(app);
  const client = new iam.Role(stack, TWIN_CLIENT_ROLE_ID, {
    assumedBy: new iam.AccountRootPrincipal(),
    description: "Deployment twin only: a user's principal with what HtcGrid.grantSubmit grants",
  });
  stack.grid.grantSubmit(client);
  NagSuppressions.addResourceSuppressions(
    client,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason: "Twin-only stand-in for a user's principal: the wildcards are grantSubmit's own.",
      },
    ],
    true,
  );
  // A user of the HTTP API needs nothing but invoking it: the twin calls it with this role alone.
  const apiClient = new iam.Role(stack, TWIN_API_CLIENT_ROLE_ID, {
    assumedBy: new iam.AccountRootPrincipal(),
    description: "Deployment twin only: an HTTP API user's principal with what HtcGrid.api.grantInvoke grants",
  });
  stack.grid.api.grantInvoke(apiClient);
  app.synth();
} catch (err) {
  if (!isUserError(err)) throw err;
  process.stderr.write(`${userErrorMessage(err)}\n`);
  process.exit(1);
}
