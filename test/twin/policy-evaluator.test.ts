// The twin's IAM evaluation: identity policies, resource policies, wildcards, NotAction, explicit Deny, conditions.
import { evaluateAccess, type NamedPolicy } from '../../twin/iam/policy-evaluator';

const ROLE = 'arn:aws:iam::123456789012:role/task-role';
const TABLE = 'arn:aws:dynamodb:us-east-1:123456789012:table/tasks';
const BUCKET = 'arn:aws:s3:::data-bucket';

const taskPolicy: NamedPolicy = {
  name: 'TaskRolePolicy',
  document: {
    Statement: [
      { Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:Query'], Resource: [TABLE, `${TABLE}/index/*`] },
      { Effect: 'Allow', Action: 's3:*Object', Resource: `${BUCKET}/data/*` },
      {
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: BUCKET,
        Condition: { StringLike: { 's3:prefix': ['data/*'] } },
      },
    ],
  },
};

const request = (action: string, resource: string, context: Record<string, string> = {}) => ({
  action,
  resource,
  principalArn: ROLE,
  context,
});

describe('IAM evaluation of a recorded call', () => {
  it('allows an action and resource a statement names, wildcards included', () => {
    expect(evaluateAccess(request('dynamodb:Query', `${TABLE}/index/lease_index`), [taskPolicy])).toMatchObject({
      allowed: true,
      statement: 'TaskRolePolicy#0',
    });
    expect(evaluateAccess(request('s3:GetObject', `${BUCKET}/data/p/1`), [taskPolicy]).allowed).toBe(true);
  });

  it('compares actions without regard to case, as IAM does', () => {
    expect(evaluateAccess(request('DynamoDB:getitem', TABLE), [taskPolicy]).allowed).toBe(true);
  });

  it('denies an action no statement allows (implicit deny)', () => {
    expect(evaluateAccess(request('dynamodb:PutItem', TABLE), [taskPolicy])).toMatchObject({
      allowed: false,
      reason: 'implicit-deny',
    });
  });

  it('denies an allowed action on a resource outside the statement', () => {
    expect(
      evaluateAccess(request('dynamodb:GetItem', 'arn:aws:dynamodb:us-east-1:123456789012:table/other'), [taskPolicy])
        .allowed,
    ).toBe(false);
    expect(evaluateAccess(request('s3:GetObject', `${BUCKET}/workers/w.zip`), [taskPolicy]).allowed).toBe(false);
  });

  it('applies a condition on a request key (s3:prefix)', () => {
    expect(evaluateAccess(request('s3:ListBucket', BUCKET, { 's3:prefix': 'data/s1/' }), [taskPolicy]).allowed).toBe(
      true,
    );
    expect(evaluateAccess(request('s3:ListBucket', BUCKET, { 's3:prefix': 'workers/' }), [taskPolicy]).allowed).toBe(
      false,
    );
  });

  it('lets an explicit Deny of a resource policy win over an identity Allow', () => {
    const tlsOnly: NamedPolicy = {
      name: 'BucketPolicy',
      document: {
        Statement: [
          {
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:*',
            Resource: [BUCKET, `${BUCKET}/*`],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      },
    };
    const call = (secure: string) => request('s3:GetObject', `${BUCKET}/data/x`, { 'aws:SecureTransport': secure });
    expect(evaluateAccess(call('true'), [taskPolicy], [tlsOnly]).allowed).toBe(true);
    expect(evaluateAccess(call('false'), [taskPolicy], [tlsOnly])).toMatchObject({
      allowed: false,
      reason: 'explicit-deny',
      statement: 'BucketPolicy#0',
    });
  });

  it('honours NotAction: everything but the listed actions', () => {
    const allButDelete: NamedPolicy = {
      name: 'NotActionPolicy',
      document: { Statement: [{ Effect: 'Allow', NotAction: 'sqs:Delete*', Resource: '*' }] },
    };
    expect(
      evaluateAccess(request('sqs:SendMessage', 'arn:aws:sqs:us-east-1:123456789012:q'), [allButDelete]).allowed,
    ).toBe(true);
    expect(
      evaluateAccess(request('sqs:DeleteMessage', 'arn:aws:sqs:us-east-1:123456789012:q'), [allButDelete]).allowed,
    ).toBe(false);
  });

  it('reports a condition it cannot evaluate instead of guessing', () => {
    const sourceIp: NamedPolicy = {
      name: 'IpPolicy',
      document: {
        Statement: [
          {
            Effect: 'Allow',
            Action: 'sqs:*',
            Resource: '*',
            Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
          },
        ],
      },
    };
    const decision = evaluateAccess(request('sqs:SendMessage', 'arn:aws:sqs:us-east-1:123456789012:q'), [sourceIp]);
    expect(decision.allowed).toBe(false);
    expect(decision.unevaluated).toEqual(['IpPolicy#0']);
  });

  it('ignores resource policy statements for other principals', () => {
    const otherPrincipal: NamedPolicy = {
      name: 'QueuePolicy',
      document: {
        Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::999999999999:root' }, Action: 'sqs:*' }],
      },
    };
    expect(
      evaluateAccess(request('sqs:SendMessage', 'arn:aws:sqs:us-east-1:123456789012:q'), [], [otherPrincipal]).allowed,
    ).toBe(false);
  });
});
