// One CPU architecture per grid: the task, the agent image built at deploy time and the instances agree (defect 2).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PYTHON_WORKER, synthGrid } from './grid-app';
import { taskDefinition } from './template-helpers';

const CASES = [
  { name: 'Fargate (default)', context: {}, platform: 'linux/amd64' },
  { name: 'Fargate on arm64', context: { cpu_architecture: 'arm64' }, platform: 'linux/arm64' },
  { name: 'EC2 c6i (x86_64)', context: { ec2_instance_type: 'c6i.xlarge' }, platform: 'linux/amd64' },
  { name: 'EC2 c7g (Graviton)', context: { ec2_instance_type: 'c7g.xlarge' }, platform: 'linux/arm64' },
] as const;

/** What the task definition says of its architecture: Fargate names it, EC2 leaves it to the instances' AMI. */
function taskArchitecture(context: Record<string, string>): string {
  const { template } = synthGrid({ worker: PYTHON_WORKER, ...context });
  const platform = taskDefinition(template).RuntimePlatform as { CpuArchitecture: string } | undefined;
  if (platform) return platform.CpuArchitecture === 'ARM64' ? 'linux/arm64' : 'linux/amd64';
  const ami = JSON.stringify(template.toJSON().Parameters ?? {});
  return /amazon-linux-2023\/arm64\//.test(ami) ? 'linux/arm64' : 'linux/amd64';
}

/** The Docker image assets of the synthesized stack, as `cdk deploy` would build them. */
function dockerImageAssets(context: Record<string, string>): { platform?: string; directory: string }[] {
  const { app, stack } = synthGrid({ worker: PYTHON_WORKER, ...context });
  const assembly = app.synth();
  const manifest = JSON.parse(
    fs.readFileSync(path.join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8'),
  ) as { dockerImages: Record<string, { source: { platform?: string; directory: string } }> };
  return Object.values(manifest.dockerImages).map((d) => d.source);
}

describe.each(CASES)('$name', ({ context, platform }) => {
  it(`runs the task on ${platform}`, () => {
    expect(taskArchitecture(context)).toBe(platform);
  });

  it(`builds the agent image for ${platform}, whatever the deploying machine`, () => {
    const images = dockerImageAssets(context);

    expect(images).toHaveLength(1);
    expect(images[0]!.platform).toBe(platform);
  });
});

describe('EC2 capacity', () => {
  it('boots the ECS-optimized AMI of the instance type’s architecture', () => {
    const arm = JSON.stringify(synthGrid({ worker: PYTHON_WORKER, ec2_instance_type: 'c7g.xlarge' }).template.toJSON());
    const x86 = JSON.stringify(synthGrid({ worker: PYTHON_WORKER, ec2_instance_type: 'c6i.xlarge' }).template.toJSON());

    expect(arm).toMatch(/ecs\/optimized-ami\/amazon-linux-2023\/arm64\/recommended/);
    expect(x86).toMatch(/ecs\/optimized-ami\/amazon-linux-2023\/recommended/);
  });

  it('refuses a -c cpu_architecture that contradicts the instance type', () => {
    expect(() =>
      synthGrid({ worker: PYTHON_WORKER, ec2_instance_type: 'c7g.xlarge', cpu_architecture: 'x86_64' }),
    ).toThrow(/cpu_architecture: x86_64 does not match ec2_instance_type c7g\.xlarge \(arm64\)/);
  });
});
