// The grid's network: private subnets, gateway endpoints for S3 and DynamoDB, interface endpoints for what tasks call.
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RemovalPolicy } from 'aws-cdk-lib';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { ConfigError } from '../core/errors';

export interface GridVpcProps {
  /**
   * An existing VPC to use. Its private subnets must either reach the internet through a NAT or already have the
   * endpoints this construct would add; set `addEndpoints: false` when they exist.
   * @default - a new VPC with private isolated subnets in two Availability Zones
   */
  readonly vpc?: ec2.IVpc;
  /**
   * NAT gateways of a new VPC. 0 keeps tasks off the internet: everything they call is reached through endpoints.
   * @default 0
   */
  readonly natGateways?: number;
  /**
   * Availability Zones of a new VPC.
   * @default 2
   */
  readonly maxAzs?: number;
  /**
   * Add the gateway (S3, DynamoDB) and interface (ECR, CloudWatch Logs, SQS) endpoints.
   * @default true
   */
  readonly addEndpoints?: boolean;
  /**
   * Also add the endpoints ECS container instances need to register and report (ECS, ECS agent, ECS telemetry):
   * needed for EC2 capacity in subnets without a NAT.
   * @default false
   */
  readonly ecsInstanceEndpoints?: boolean;
}

/** VPC for the compute plane. Tasks run in `subnets`; they reach AWS services through VPC endpoints. */
export class GridVpc extends Construct {
  /** The VPC. */
  readonly vpc: ec2.IVpc;
  /** Where tasks run. */
  readonly subnets: ec2.SubnetSelection;

  constructor(scope: Construct, id: string, props: GridVpcProps = {}) {
    super(scope, id);
    const natGateways = props.natGateways ?? 0;
    if (!Number.isInteger(natGateways) || natGateways < 0 || natGateways > 3) {
      throw new ConfigError([
        `nat_gateways: ${natGateways} must be a whole number from 0 to 3 (0 = no internet access)`,
      ]);
    }
    if (props.vpc && props.natGateways !== undefined) {
      throw new ConfigError(['GridVpc: natGateways only applies to a new VPC; remove it or do not pass vpc']);
    }
    ({ vpc: this.vpc, subnets: this.subnets } = props.vpc
      ? existingVpc(props.vpc)
      : this.createVpc(natGateways, props.maxAzs ?? 2));
    if (props.addEndpoints ?? true) this.addEndpoints(props.ecsInstanceEndpoints ?? false);
  }

  /** A new VPC: private isolated subnets without NAT, private subnets behind NAT with it; REJECT flow logs. */
  private createVpc(natGateways: number, maxAzs: number): { vpc: ec2.IVpc; subnets: ec2.SubnetSelection } {
    const isolated = natGateways === 0;
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs,
      natGateways,
      subnetConfiguration: isolated
        ? [{ name: 'Private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }]
        : [
            // Public subnets hold only the NAT gateways (their own Elastic IPs): nothing gets a public IP on launch.
            { name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
            { name: 'Private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
          ],
    });
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    return {
      vpc,
      subnets: { subnetType: isolated ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS },
    };
  }

  /** Gateway endpoints for S3 and DynamoDB, interface endpoints for what tasks (and ECS instances) call. */
  private addEndpoints(ecsInstanceEndpoints: boolean): void {
    this.vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.subnets] });
    this.vpc.addGatewayEndpoint('DynamoDb', {
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [this.subnets],
    });
    const interfaces: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
      ...(ecsInstanceEndpoints
        ? {
            Ecs: ec2.InterfaceVpcEndpointAwsService.ECS,
            EcsAgent: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
            EcsTelemetry: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
          }
        : {}),
    };
    for (const [name, service] of Object.entries(interfaces)) {
      const endpoint = this.vpc.addInterfaceEndpoint(name, { service, subnets: this.subnets, privateDnsEnabled: true });
      NagSuppressions.addResourceSuppressions(
        endpoint,
        [
          {
            id: 'AwsSolutions-EC23',
            reason:
              'Interface endpoint security groups admit HTTPS from the VPC CIDR only (CDK default), never 0.0.0.0/0.',
          },
          {
            id: 'CdkNagValidationFailure',
            reason: 'The rule cannot resolve the VPC CIDR token; the ingress is the VPC CIDR on port 443.',
            appliesTo: ['AwsSolutions-EC23'],
          },
        ],
        true,
      );
    }
  }
}

/** The subnets tasks run in, in a VPC of the user's: its private subnets, else its isolated ones. */
function existingVpc(vpc: ec2.IVpc): { vpc: ec2.IVpc; subnets: ec2.SubnetSelection } {
  const isolated = vpc.isolatedSubnets.length > 0 && vpc.privateSubnets.length === 0;
  return {
    vpc,
    subnets: isolated
      ? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }
      : { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, onePerAz: true },
  };
}
