// cfn-guard (npm @cdklabs/cdk-validator-cfnguard, its bundled binary and AWS Control Tower proactive control rules,
// offline) over the synthesized grid: every rule passes but the ones excluded below, each for a stated reason.
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import { PYTHON_WORKER, synthGrid } from './grid-app';

/** Rules that do not fit a grid, and why. The other Control Tower rules (over 250) all run. */
export const EXCLUDED_GUARD_RULES: Readonly<Record<string, string>> = {
  'ct-autoscaling-pr-1':
    'The EC2 capacity group spans the private subnets of both Availability Zones (VPCZoneIdentifier); the rule reads ' +
    'only the AvailabilityZones property, which CloudFormation leaves out for groups in a VPC.',
  'ct-autoscaling-pr-6':
    'EC2 capacity runs one instance type the user picks for the task size (-c ec2_instance_type); ECS places tasks ' +
    'by that size.',
  'ct-ec2-pr-10':
    'One-minute EC2 metrics cost extra per instance and nothing reads them: ECS managed scaling scales on its own ' +
    'capacity metric.',
  'ct-cloudwatch-pr-1':
    'Alarms notify the SNS topic of -c alarm_topic_arn when given; a grid deployed without one has no one to notify, ' +
    'and the README says its alarms only show on the dashboard.',
  'ct-cloudwatch-pr-2':
    'Logs are kept one month: agents log per task and per minute at millions of tasks a day, and a year of them ' +
    'would cost more than the grid. Set logRetention for longer.',
  'ct-cloudwatch-pr-3':
    'CloudWatch Logs encrypts log data at rest by default; the logs hold task ids and errors, no secrets, and a ' +
    'customer-managed key would add a key policy and KMS calls to every agent.',
  'ct-ecs-pr-3':
    'The init container runs as root to hand the root-owned task volumes to the sandbox uid; it runs before any ' +
    'worker code and exits. The agent and the Lambda containers run as 993:990 (checked in template-invariants).',
  'ct-ecs-pr-7':
    'Containers share the task memory (the task has a hard limit): a hard limit per container would split it ' +
    'statically between the slots and the agent, and a slot short of memory would be OOM-killed while others idle.',
  'ct-eks-pr-1':
    "A new EKS cluster's API endpoint is public and private: operators run kubectl from their machines, every call " +
    'is authenticated by IAM and authorised by access entries, and nodes and the kubectl function use the private ' +
    'endpoint. A private-only endpoint needs a VPN or a bastion the grid does not bring.',
  'ct-lambda-pr-3':
    "The reaper and aws-cdk-lib's bucket deployment handler call DynamoDB, SQS and S3 with IAM over AWS's " +
    'endpoints; in the VPC they would need ENIs and, for the reaper, nothing more secure.',
  'ct-s3-pr-2': 'Server access logs are opt-in (serverAccessLogsBucket), as for cdk-nag AwsSolutions-S1.',
  'ct-s3-pr-4': 'Nothing consumes bucket events: agents and clients know the keys they read.',
  'ct-s3-pr-9':
    'Object Lock would keep payloads, results and old worker zips from expiring; lifecycle rules expire them.',
  'ct-s3-pr-10':
    'SSE-S3, not SSE-KMS: every payload and result object would add KMS requests (and their cost) per task.',
  'ct-s3-pr-11':
    'The data bucket holds transient payloads and results that expire after 30 days: versions would keep deleted ' +
    'ones. The worker bucket is versioned.',
  'ct-sqs-pr-1': 'The dead-letter queue itself has no dead-letter queue: it is the end of the line.',
};

describe('cfn-guard with the Control Tower rules', () => {
  const validator = () => new CfnGuardValidator({ disabledRules: Object.keys(EXCLUDED_GUARD_RULES) });

  it.each([
    ['the default grid (Fargate)', {}],
    ['a grid on EC2 with a NAT gateway', { ec2_instance_type: 'c6i.large', nat_gateways: '1' }],
    ['a grid on a new EKS cluster', { compute: 'eks' }],
  ])('passes on %s, but for the excluded rules', (_, context) => {
    expect(() => synthGrid({ worker: PYTHON_WORKER, ...context }, { validations: [validator()] })).not.toThrow();
  });

  it('excludes each rule for a written reason', () => {
    for (const [rule, reason] of Object.entries(EXCLUDED_GUARD_RULES)) {
      expect(rule).toMatch(/^ct-[a-z0-9]+-pr-\d+$/);
      expect(reason.length).toBeGreaterThan(40);
    }
  });
});
