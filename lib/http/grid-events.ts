// The live view of a grid for `GET /v1/events`: recent sessions with counts and throughput, backlog and agents, as SSE.
import type { GridOverview, StateCounts } from '../core';
import type { TaskTable } from '../ports';
import { sleep } from '../timing';
import type { AgentDirectory } from './agents';
import { sessionStatusView } from './task-views';

export type { GridOverview, SessionLiveView } from '../core';

function terminal(counts: StateCounts): number {
  return counts.succeeded + counts.failed + counts.cancelled;
}

/**
 * Takes snapshots of the most recent sessions for one event stream. Counts of a session that is done never change
 * again, so they are read once per stream: a stream costs one session listing plus one count per live session per
 * event.
 */
export class OverviewTracker {
  private readonly done = new Map<string, StateCounts>();
  private previous: { at: number; finished: Map<string, number> } | undefined;

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
    const at = this.clock();
    const finished = new Map(counted.map((s) => [s.sessionId, terminal(s.counts)]));
    const before = this.previous;
    const seconds = before ? Math.max(0.001, (at - before.at) / 1000) : 0;
    const sessions = counted.map((s) => {
      const earlier = before?.finished.get(s.sessionId);
      const rate = earlier === undefined || seconds === 0 ? 0 : Math.max(0, terminal(s.counts) - earlier) / seconds;
      return { ...s, completionsPerSec: Math.round(rate * 10) / 10 };
    });
    this.previous = { at, finished };
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
    return { at, sessions, totals, agents: await this.agents.list() };
  }
}

/**
 * The chunks of a `text/event-stream`: an `overview` event every `intervalMs` until `deadline`, then an `end` event
 * (the browser's EventSource, or our dashboard, reconnects). Each event carries an `id`, the snapshot time.
 */
export async function* overviewEvents(
  tracker: OverviewTracker,
  intervalMs: number,
  deadline: number,
  clock: () => number,
  signal: AbortSignal | undefined,
): AsyncGenerator<string> {
  yield `retry: ${Math.max(1000, intervalMs)}\n\n`;
  for (;;) {
    if (signal?.aborted) return;
    const started = clock();
    const overview = await tracker.snapshot();
    yield `id: ${overview.at}\nevent: overview\ndata: ${JSON.stringify(overview)}\n\n`;
    const next = started + intervalMs;
    if (next >= deadline) break;
    await sleep(Math.max(0, next - clock()), signal);
  }
  if (!signal?.aborted) yield `event: end\ndata: {"reason":"deadline"}\n\n`;
}
