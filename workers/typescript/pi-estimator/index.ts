// Example Node worker: estimates pi by Monte Carlo sampling with a seeded generator, so a task's result is reproducible.

/** The parts of the Lambda context this worker reads (the grid passes a full Lambda context). */
export interface LambdaContext {
  readonly awsRequestId: string;
  readonly clientContext?: { readonly custom?: Readonly<Record<string, unknown>> };
  getRemainingTimeInMillis(): number;
}

export interface PiEvent {
  /** Points drawn in the unit square (1 ≤ samples ≤ 10^9). */
  readonly samples: number;
  /** Seed of the generator; the same seed and samples always give the same estimate. @default 1 */
  readonly seed?: number;
}

export interface PiResult {
  readonly samples: number;
  readonly seed: number;
  /** Points that fell inside the quarter circle. */
  readonly inside: number;
  readonly estimate: number;
  /** Standard error of the estimate. */
  readonly stdError: number;
  readonly taskId?: string;
}

const MAX_SAMPLES = 1_000_000_000;

export async function handler(event: PiEvent, context: LambdaContext): Promise<PiResult> {
  const samples = event.samples;
  const seed = event.seed ?? 1;
  if (!Number.isInteger(samples) || samples < 1 || samples > MAX_SAMPLES) {
    throw new RangeError(`samples must be an integer from 1 to ${MAX_SAMPLES}, got ${String(samples)}`);
  }
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${String(seed)}`);

  const next = mulberry32(seed);
  let inside = 0;
  for (let i = 0; i < samples; i++) {
    const x = next();
    const y = next();
    if (x * x + y * y <= 1) inside++;
  }
  const p = inside / samples;
  const taskId = context.clientContext?.custom?.task_id;
  return {
    samples,
    seed,
    inside,
    estimate: 4 * p,
    stdError: 4 * Math.sqrt((p * (1 - p)) / samples),
    ...(typeof taskId === 'string' ? { taskId } : {}),
  };
}

/** Mulberry32: a small, fast 32-bit generator; good enough for a demo, not for research. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
