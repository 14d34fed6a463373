// Where one AWS round trip's time goes: every SDK request of the client and the agent timed at the SDK, at the delay
// proxy and at the emulator, plus the handler's invocation, per round; printed as a table of medians per step.
import { percentile } from '../peers/figures';

/** One SDK request, timed in `performance.now()` ms of this process (the bench runs client, agent and proxies). */
export interface TracedRequest {
  readonly side: string;
  readonly service: string;
  readonly op: string;
  readonly sdkStart: number;
  sdkEnd?: number;
  /** The proxy read the whole request. */
  arrived?: number;
  /** The proxy's timer fired and it sent the request on to the emulator. */
  forwarded?: number;
  /** The emulator's answer began. */
  answered?: number;
  /** ReceiveMessage: messages in the answer. */
  messages?: number;
}

/** What the proxy tells of a request that carried the trace header. */
export interface ProxyTiming {
  readonly arrived: number;
  readonly forwarded: number;
  readonly answered: number;
}

const TRACE_HEADER = 'x-htcgrid-trace';

interface BuildArgs {
  input: object;
  request?: unknown;
}

/** The slice of an SDK client's middleware stack the trace uses, typed loosely enough for any client. */
interface Stack {
  add(
    middleware: (
      next: (args: BuildArgs) => Promise<{ output: object }>,
      context: { commandName?: string },
    ) => (args: BuildArgs) => Promise<{ output: object }>,
    options: { step: 'build'; name: string; priority: 'high' | 'low' },
  ): void;
}

export class AwsTrace {
  private readonly requests = new Map<number, TracedRequest>();
  private readonly invokes: { taskId: string; start: number; end: number }[] = [];
  private readonly rounds: { start: number; end: number }[] = [];
  private next = 0;
  /** New TCP connections the proxies accepted (each SDK client should keep its few alive). */
  connections = 0;

  /** Adds the trace's middleware to an SDK client: its requests are timed and carry their id to the proxy. */
  instrument(side: string, service: string, client: { middlewareStack: unknown }): void {
    (client.middlewareStack as Stack).add(
      (next, context) => async (args) => {
        const id = this.next++;
        const op = context.commandName?.replace(/Command$/, '') ?? '?';
        const traced: TracedRequest = { side, service, op, sdkStart: performance.now() };
        this.requests.set(id, traced);
        const request = args.request as { headers?: Record<string, string> } | undefined;
        if (request?.headers) request.headers[TRACE_HEADER] = String(id);
        try {
          const out = await next(args);
          const output = out.output as { Messages?: unknown[] };
          if (op === 'ReceiveMessage') traced.messages = output.Messages?.length ?? 0;
          return out;
        } finally {
          traced.sdkEnd = performance.now();
        }
      },
      // Before signing, so the header is signed like any other (s3rver checks signatures).
      { step: 'build', name: 'htcgridTrace', priority: 'low' },
    );
  }

  /** The proxy's hook: timings of a request by its trace header. */
  proxied(headers: Record<string, string | string[] | undefined>, timing: ProxyTiming): void {
    const id = Number(headers[TRACE_HEADER]);
    const traced = this.requests.get(id);
    if (!traced) return;
    traced.arrived = timing.arrived;
    traced.forwarded = timing.forwarded;
    traced.answered = timing.answered;
  }

  invoked(taskId: string, start: number, end: number): void {
    this.invokes.push({ taskId, start, end });
  }

  round(start: number, end: number): void {
    this.rounds.push({ start, end });
  }

  /**
   * Medians over the rounds of each step of the path, in ms from the round's start (`submit`): when it began and
   * ended, and of a request's time, the injected delay's own time at the proxy (its timer, nominally the flag) and
   * the emulator's (forwarded → answer). A long poll's wait is its answer after the send that fed it.
   */
  table(delays: Readonly<Record<string, number>>): string {
    const steps = new Map<string, Step>();
    const add = (name: string, start: number, end: number, r?: TracedRequest) => {
      let s = steps.get(name);
      if (!s) steps.set(name, (s = { start: [], end: [], proxy: [], emulator: [], out: [], back: [] }));
      s.start.push(start);
      s.end.push(end);
      if (r?.arrived !== undefined && r.forwarded !== undefined && r.answered !== undefined && r.sdkEnd !== undefined) {
        s.proxy.push(r.forwarded - r.arrived);
        s.emulator.push(r.answered - r.forwarded);
        // Ours and the SDK's besides the proxy's and emulator's: signing and sending; the answer's way back, parsing.
        s.out.push(r.arrived - r.sdkStart);
        s.back.push(r.sdkEnd - r.answered);
      }
    };
    const all = [...this.requests.values()];
    for (const { start, end } of this.rounds) {
      const inRound = all
        .filter((r) => r.sdkEnd !== undefined && r.sdkEnd > start && r.sdkEnd <= end + 0.001)
        .sort((a, b) => a.sdkStart - b.sdkStart);
      const at = (t: number) => t - start;
      const seen = new Map<string, number>();
      for (const r of inRound) {
        if (r.op === 'ReceiveMessage') {
          // A long poll that brought something: from the emulator's answer on (the poll began long before).
          if (r.messages)
            add(`${r.side} ReceiveMessage (long poll answers)`, at(r.answered ?? r.sdkEnd!), at(r.sdkEnd!));
          continue;
        }
        if (r.sdkStart < start) continue;
        const base = `${r.side} ${r.service} ${r.op}`;
        const nth = (seen.get(base) ?? 0) + 1;
        seen.set(base, nth);
        add(nth > 1 ? `${base} #${nth}` : base, at(r.sdkStart), at(r.sdkEnd!), r);
      }
      for (const inv of this.invokes) {
        if (inv.start >= start && inv.end <= end) add('agent invoke', at(inv.start), at(inv.end));
      }
      add('round', 0, at(end));
    }
    const rows = [...steps].sort(([, a], [, b]) => median(a.start) - median(b.start) || median(a.end) - median(b.end));
    const lines = [
      `| step | n | starts | ends | took | SDK → proxy | proxy timer (flag) | emulator | answer → SDK |`,
      `|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
    ];
    for (const [name, s] of rows) {
      const flag = delays[name.split(' ')[1] ?? ''];
      const cells = [
        name,
        String(s.start.length),
        fmt(s.start),
        fmt(s.end),
        fmt(s.end.map((e, i) => e - s.start[i]!)),
        fmt(s.out),
        s.proxy.length > 0 ? `${fmt(s.proxy)} (${flag ?? '-'})` : '',
        fmt(s.emulator),
        fmt(s.back),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
    lines.push('', `new connections to the proxies: ${this.connections}`);
    return lines.join('\n');
  }
}

interface Step {
  readonly start: number[];
  readonly end: number[];
  readonly proxy: number[];
  readonly emulator: number[];
  readonly out: number[];
  readonly back: number[];
}

function median(xs: readonly number[]): number {
  return (
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    ) ?? Number.NaN
  );
}

function fmt(xs: readonly number[]): string {
  return xs.length === 0 ? '' : median(xs).toFixed(1);
}
