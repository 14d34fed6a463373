// The live view of a grid for `GET /v1/events`: recent sessions with counts and throughput, backlog and agents, as SSE.
import type { GridOverview, StateCounts } from '../core';
import type { ChangeFeed } from '../client';
import type { TaskTable } from '../ports';
import { sleep } from '../timing';
import type { AgentDirectory } from './agents';
import { sessionStatusView } from './task-views';

export type { GridOverview, SessionLiveView } from '../core';

function terminal(counts: StateCounts): number {
  return counts.succeeded + counts.failed + counts.cancelled;
}

/** Completions per second are counted over at least this long, however often events go out. */
export const RATE_WINDOW_MS = 1_000;

interface Sample {
  readonly at: number;
  readonly finished: ReadonlyMap<string, number>;
}

/**
 * Takes snapshots of the most recent sessions for one event stream. Counts of a session that is done never change
 * again, so they are read once per stream: a stream costs one session listing plus one count per live session per
 * event. Completions per second compare with the newest earlier snapshot at least `RATE_WINDOW_MS` old, so events
 * sent at each change (many a second) still show a steady rate.
 */
export class OverviewTracker {
  private readonly done = new Map<string, StateCounts>();
  /** Earlier snapshots' finished counts, oldest first: those of the last window and the one before it. */
  private samples: Sample[] = [];

  constructor(
    private readonly table: TaskTable,
    private readonly agents: AgentDirectory,
    private readonly sessionLimit: number,
    private readonly clock: () => number,
  ) {}

  async snapshot(): Promise<GridOverview> {
    const page = await this.table.listSessions(undefined, this.sessionLimit);
    const counted = await Promise.all(
      page.items.map(async (session) => {
        const known = this.done.get(session.sessionId);
        const counts = known ?? (await this.table.countByState(session.sessionId));
        const view = sessionStatusView(session, counts);
        if (view.done) this.done.set(session.sessionId, counts);
        return view;
      }),
    );
    const agents = await this.agents.list();
    const at = this.clock();
    const finished = new Map(counted.map((s) => [s.sessionId, terminal(s.counts)]));
    const base = this.baseFor(at);
    const seconds = base ? Math.max(0.001, (at - base.at) / 1000) : 0;
    const sessions = counted.map((s) => {
      const earlier = base?.finished.get(s.sessionId);
      const rate = earlier === undefined || seconds === 0 ? 0 : Math.max(0, terminal(s.counts) - earlier) / seconds;
      return { ...s, completionsPerSec: Math.round(rate * 10) / 10 };
    });
    this.samples.push({ at, finished });
    // Done sessions that fell off the listing are forgotten: the map stays as small as the listing.
    for (const id of this.done.keys()) if (!finished.has(id)) this.done.delete(id);
    const totals = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, backlog: 0, completionsPerSec: 0 };
    for (const s of sessions) {
      for (const state of ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const) {
        totals[state] += s.counts[state];
      }
      totals.completionsPerSec += s.completionsPerSec;
    }
    totals.backlog = totals.pending + totals.running;
    totals.completionsPerSec = Math.round(totals.completionsPerSec * 10) / 10;
    return { at, sessions, totals, agents };
  }

  /** The newest earlier sample at least a window old (else the oldest), dropping those no later call needs. */
  private baseFor(at: number): Sample | undefined {
    let base = 0;
    for (let i = 0; i < this.samples.length; i++) if (this.samples[i]!.at <= at - RATE_WINDOW_MS) base = i;
    this.samples = this.samples.slice(base);
    return this.samples[0];
  }
}

/** When the stream sends its next event. */
export interface OverviewPace {
  /** Longest time between events: the poll, where nothing wakes the stream (or what changes is not signalled). */
  readonly intervalMs: number;
  /**
   * Shortest time between events: a grid finishing thousands of tasks a second sends at most this many a second.
   * @default 100 ms
   */
  readonly minIntervalMs?: number;
  /**
   * What wakes the stream before `intervalMs`: tasks that ended, sessions sealed or cancelled, tasks queued (a local
   * grid's `DatabaseChanges` topics). Claims are not signalled: a task that started shows at the next wake or poll.
   * @default - none: an event every `intervalMs`
   */
  readonly changes?: readonly ChangeFeed[];
}

/** Events go no closer than this by default: 10 a second. */
const DEFAULT_MIN_INTERVAL_MS = 100;

/**
 * The chunks of a `text/event-stream`: an `overview` event at once, then whenever the grid changed (no closer than
 * `minIntervalMs`) or `intervalMs` passed, until `deadline`, then an `end` event (the browser's EventSource, or our
 * dashboard, reconnects). Each event carries an `id`, the snapshot time.
 */
export async function* overviewEvents(
  tracker: OverviewTracker,
  pace: OverviewPace,
  deadline: number,
  clock: () => number,
  signal: AbortSignal | undefined,
): AsyncGenerator<string> {
  const { intervalMs } = pace;
  const minIntervalMs = Math.min(intervalMs, pace.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS);
  const feeds = pace.changes ?? [];
  yield `retry: ${Math.max(1000, intervalMs)}\n\n`;
  for (;;) {
    if (signal?.aborted) return;
    const started = clock();
    // Read before the snapshot: a change during it wakes the next wait at once.
    const marks = feeds.map((feed) => feed.version);
    const overview = await tracker.snapshot();
    yield `id: ${overview.at}\nevent: overview\ndata: ${JSON.stringify(overview)}\n\n`;
    const latest = Math.min(started + intervalMs, deadline);
    if (started + intervalMs >= deadline && feeds.length === 0) break;
    // The throttle first, then the first change or the poll.
    if (await sleep(Math.max(0, Math.min(started + minIntervalMs, latest) - clock()), signal)) return;
    if (feeds.length > 0) await firstChange(feeds, marks, Math.max(0, latest - clock()), signal);
    else await sleep(Math.max(0, latest - clock()), signal);
    if (clock() >= deadline) break;
  }
  if (!signal?.aborted) yield `event: end\ndata: {"reason":"deadline"}\n\n`;
}

/** Resolves when any feed changed after its mark, after `timeoutMs`, or on abort; leaves no waiter behind. */
async function firstChange(
  feeds: readonly ChangeFeed[],
  marks: readonly number[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race(feeds.map((feed, i) => feed.waitForChange(marks[i]!, timeoutMs, stop.signal)));
  } finally {
    stop.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}
