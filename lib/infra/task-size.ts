// The sizes an agent task may have: Fargate's CPU and memory combinations, or EC2's looser bounds.

/** Fargate CPU units → [least MiB, most MiB, step MiB]. */
const FARGATE_MEMORY: Readonly<Record<number, readonly [number, number, number]>> = {
  256: [512, 2048, 1024],
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
  8192: [16384, 61440, 4096],
  16384: [32768, 122880, 8192],
};

export const FARGATE_CPU_UNITS: readonly number[] = Object.keys(FARGATE_MEMORY).map(Number);

/** Every problem with a task size, phrased for the user (empty when it is valid). */
export function taskSizeIssues(size: { fargate: boolean; cpu: number; memoryMiB: number }): string[] {
  const { cpu, memoryMiB } = size;
  if (!size.fargate) {
    return Number.isInteger(cpu) && cpu >= 128 && Number.isInteger(memoryMiB) && memoryMiB >= 512
      ? []
      : [`cpu/memory: ${cpu} units / ${memoryMiB} MiB: use at least 128 CPU units and 512 MiB`];
  }
  const bounds = FARGATE_MEMORY[cpu];
  if (!bounds) return [`cpu: ${cpu} is not a Fargate task size: use one of ${FARGATE_CPU_UNITS.join(', ')}`];
  const [min, max, step] = bounds;
  const fits =
    memoryMiB >= min &&
    memoryMiB <= max &&
    (cpu === 256 ? [512, 1024, 2048].includes(memoryMiB) : memoryMiB % step === 0);
  return fits
    ? []
    : [`memory: ${memoryMiB} MiB does not fit cpu ${cpu} on Fargate: use ${min}..${max} MiB in steps of ${step} MiB`];
}
