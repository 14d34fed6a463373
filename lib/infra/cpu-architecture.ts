// The grid's one CPU architecture, and what it means for the task, the images, the instances and the worker's wheels.
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { LambdaArchitecture } from '../packaging';

/**
 * CPU architecture of the agents' tasks. Everything built for them follows it: the agent image, the worker's Python
 * wheels, the EC2 instances' AMI. (The Lambda base images and the AWS CLI image are multi-architecture.)
 */
export type CpuArchitecture = LambdaArchitecture;

export const CPU_ARCHITECTURES: readonly CpuArchitecture[] = ['x86_64', 'arm64'];

/** The ECS task's `runtimePlatform.cpuArchitecture`. */
export function ecsCpuArchitecture(arch: CpuArchitecture): ecs.CpuArchitecture {
  return arch === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64;
}

/** The platform Docker builds the agent image for, whatever machine runs `cdk deploy`. */
export function dockerPlatform(arch: CpuArchitecture): Platform {
  return arch === 'arm64' ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64;
}

/** The Docker platform string of an architecture (`linux/amd64`, `linux/arm64`). */
export function dockerPlatformName(arch: CpuArchitecture): string {
  return arch === 'arm64' ? 'linux/arm64' : 'linux/amd64';
}

/** The ECS-optimized AMI hardware type for EC2 capacity. */
export function amiHardwareType(arch: CpuArchitecture): ecs.AmiHardwareType {
  return arch === 'arm64' ? ecs.AmiHardwareType.ARM : ecs.AmiHardwareType.STANDARD;
}

/** The architecture of an EC2 instance type (Graviton families are arm64). */
export function instanceTypeArchitecture(instanceType: string): CpuArchitecture {
  return new ec2.InstanceType(instanceType).architecture === ec2.InstanceArchitecture.ARM_64 ? 'arm64' : 'x86_64';
}
