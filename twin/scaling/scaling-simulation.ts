// Placeholder: replaced by the scaling simulation.
import type { DeployedStack } from '../template/deployed-stack';

export interface ScalingReport {
  failures: string[];
}

export function simulateScaling(_stack: DeployedStack, _options: { measuredTasksPerSecPerAgent: number }): ScalingReport {
  return { failures: [] };
}
