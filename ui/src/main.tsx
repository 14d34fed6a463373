// The grid dashboard: live sessions, throughput and backlog, latency, failures by error type, tasks, agents, cancel.
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { Api, ApiCallError, takeToken } from './api';
import { formatMs, Histogram, TimeChart } from './charts';
import './style.css';
// The API's answers, as the server defines them (a dependency-free module: nothing of Node enters the bundle).
import {
  DISK_FULL_FIX,
  DISK_FULL_PROBLEM,
  TASK_STATES,
  type AgentsView,
  type GridOverview,
  type SessionLiveView,
  type SessionSummaryAnswer,
  type TaskDetailView,
  type TaskPageView,
  type TaskState,
} from '../../lib/core/api-views';

/** Points kept in the live charts (one a second: 10 minutes). */
const HISTORY = 600;

/**
 * How often the page reads. A local grid answers from SQLite; in AWS each event costs DynamoDB queries (a session
 * listing, and per unfinished session its index partitions and lease shards), so the page reads 5 times less often.
 */
interface Pace {
  readonly eventsMs: number;
  readonly refreshMs: number;
}
const LOCAL_PACE: Pace = { eventsMs: 1000, refreshMs: 2000 };
const AWS_PACE: Pace = { eventsMs: 5000, refreshMs: 10_000 };

interface Series {
  readonly t: number[];
  readonly rate: number[];
  readonly backlog: number[];
  readonly running: number[];
}

function App(props: { api: Api; pace: Pace }) {
  const { api, pace } = props;
  const [overview, setOverview] = useState<GridOverview | null>(null);
  const [connection, setConnection] = useState<{ state: string; detail?: string }>({ state: 'connecting' });
  const [series, setSeries] = useState<Series>({ t: [], rate: [], backlog: [], running: [] });
  const [selected, setSelected] = useState<string | null>(null);
  const [taskId, setTaskId] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(
    () =>
      api.followEvents(
        (o) => {
          setOverview(o);
          // Events come at each change (up to 10 a second): the charts keep a point a second, the last one live.
          setSeries((s) => {
            const n = s.t.length;
            const keep = n >= 2 && o.at / 1000 - s.t[n - 2]! < 1 ? n - 1 : n;
            return {
              t: [...s.t.slice(0, keep), o.at / 1000].slice(-HISTORY),
              rate: [...s.rate.slice(0, keep), o.totals.completionsPerSec].slice(-HISTORY),
              backlog: [...s.backlog.slice(0, keep), o.totals.pending].slice(-HISTORY),
              running: [...s.running.slice(0, keep), o.totals.running].slice(-HISTORY),
            };
          });
        },
        (state, detail) => setConnection({ state, detail }),
        pace.eventsMs,
      ),
    [api, pace],
  );

  // The newest session is shown until the user picks one.
  const session = overview?.sessions.find((s) => s.sessionId === selected) ?? overview?.sessions[0] ?? null;

  return (
    <div class="page">
      <header>
        <h1>htcgrid</h1>
        <span class={`connection ${connection.state}`} title={connection.detail ?? ''}>
          {connection.state}
        </span>
        {overview && <Totals overview={overview} />}
      </header>
      {connection.state === 'unauthorized' && <p class="error">{connection.detail}</p>}
      {notice && (
        <p class="notice" role="status">
          {notice} <button onClick={() => setNotice(null)}>×</button>
        </p>
      )}
      <main>
        <section class="panel sessions">
          <h2>Sessions</h2>
          <SessionList
            sessions={overview?.sessions ?? []}
            selected={session?.sessionId ?? null}
            onSelect={(id) => {
              setSelected(id);
              setTaskId(null);
            }}
          />
        </section>
        <section class="panel live">
          <h2>Throughput and backlog</h2>
          <LiveCharts series={series} />
        </section>
        <section class="panel agents">
          <h2>Agents</h2>
          <Agents agents={overview?.agents ?? null} />
        </section>
        {session && (
          <SessionPanel
            key={session.sessionId}
            api={api}
            pace={pace}
            session={session}
            onOpenTask={setTaskId}
            onNotice={setNotice}
          />
        )}
        {taskId && (
          <TaskPanel key={taskId} api={api} taskId={taskId} onClose={() => setTaskId(null)} onNotice={setNotice} />
        )}
      </main>
    </div>
  );
}

function Totals(props: { overview: GridOverview }) {
  const t = props.overview.totals;
  return (
    <dl class="totals">
      <Stat name="completions/s" value={t.completionsPerSec.toFixed(1)} />
      <Stat name="backlog" value={t.backlog} />
      {TASK_STATES.map((s) => (
        <Stat key={s} name={s} value={t[s]} />
      ))}
      <Stat name="agents" value={props.overview.agents.agents.length} />
    </dl>
  );
}

function Stat(props: { name: string; value: number | string }) {
  return (
    <div class="stat" data-stat={props.name}>
      <dt>{props.name}</dt>
      <dd>{props.value}</dd>
    </div>
  );
}

function finished(s: SessionLiveView): number {
  return s.counts.succeeded + s.counts.failed + s.counts.cancelled;
}

function total(s: SessionLiveView): number {
  return s.taskCount ?? TASK_STATES.reduce((n, state) => n + s.counts[state], 0);
}

function Progress(props: { session: SessionLiveView }) {
  const s = props.session;
  const all = Math.max(1, total(s));
  const part = (n: number) => `${(100 * n) / all}%`;
  return (
    <div class="progress" title={`${finished(s)} of ${total(s)} finished`}>
      <span class="succeeded" style={{ width: part(s.counts.succeeded) }} />
      <span class="failed" style={{ width: part(s.counts.failed) }} />
      <span class="cancelled" style={{ width: part(s.counts.cancelled) }} />
      <span class="running" style={{ width: part(s.counts.running) }} />
    </div>
  );
}

function sessionState(s: SessionLiveView): string {
  if (s.done) return s.counts.cancelled > 0 ? 'cancelled' : s.counts.failed > 0 ? 'done, with failures' : 'done';
  if (!s.sealed) return 'open';
  return s.counts.running > 0 ? 'running' : 'queued';
}

function SessionList(props: {
  sessions: readonly SessionLiveView[];
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  if (props.sessions.length === 0) return <p class="empty">No session yet: submit one (htcgrid run, or the API).</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>session</th>
          <th>progress</th>
          <th>done</th>
          <th>failed</th>
          <th>/s</th>
          <th>state</th>
        </tr>
      </thead>
      <tbody>
        {props.sessions.map((s) => (
          <tr
            key={s.sessionId}
            data-session={s.sessionId}
            class={s.sessionId === props.selected ? 'selected' : ''}
            onClick={() => props.onSelect(s.sessionId)}
          >
            <td class="id">{s.sessionId}</td>
            <td>
              <Progress session={s} />
            </td>
            <td class="num">
              {finished(s)}/{total(s)}
            </td>
            <td class="num">{s.counts.failed}</td>
            <td class="num">{s.completionsPerSec.toFixed(1)}</td>
            <td>{sessionState(s)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function LiveCharts(props: { series: Series }) {
  const s = props.series;
  const rate = useMemo<uPlot.AlignedData>(() => [s.t, s.rate], [s]);
  const backlog = useMemo<uPlot.AlignedData>(() => [s.t, s.backlog, s.running], [s]);
  return (
    <div class="charts">
      <TimeChart title="completions per second" series={[{ label: 'completions/s', color: '#2a9d8f' }]} data={rate} />
      <TimeChart
        title="backlog"
        series={[
          { label: 'pending', color: '#e9c46a' },
          { label: 'running', color: '#457b9d' },
        ]}
        data={backlog}
      />
    </div>
  );
}

function Agents(props: { agents: AgentsView | null }) {
  const a = props.agents;
  if (!a) return <p class="empty">…</p>;
  return (
    <div>
      {a.agents.length === 0 ? (
        <p class="empty">No agent known.</p>
      ) : (
        <div class="table-scroll">
          <table>
            <thead>
              <tr>
                <th>agent</th>
                <th>state</th>
                <th>slots</th>
                <th>busy</th>
                <th>idle</th>
                <th title="runtime restarts: after a timeout, a crash or an interrupted task">restarts</th>
                <th>succeeded</th>
                <th>failed</th>
                <th>retried</th>
              </tr>
            </thead>
            <tbody>
              {a.agents.map((agent) => (
                <tr key={agent.id} data-agent={agent.id}>
                  <td class="id" title={`${agent.id}: ${agent.handler} on ${agent.runtime}`}>
                    {agent.id}
                  </td>
                  {agent.waitingForDisk ? (
                    <td class="state-disk-full" data-state title={`${DISK_FULL_PROBLEM}: ${DISK_FULL_FIX}`}>
                      waiting for disk space
                    </td>
                  ) : (
                    <td class={`state-${agent.state}`} data-state>
                      {agent.state}
                    </td>
                  )}
                  <td class="num">{agent.slots}</td>
                  <td class="num" data-busy>
                    {agent.busySlots ?? '?'}
                  </td>
                  <td class="num" data-idle>
                    {agent.idleSlots ?? '?'}
                  </td>
                  <td class="num" data-restarts>
                    {agent.runtimeRestarts ?? '?'}
                  </td>
                  <td class="num">{agent.stats?.succeeded ?? '?'}</td>
                  <td class="num">{agent.stats?.failed ?? '?'}</td>
                  <td class="num">{agent.stats?.retried ?? '?'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="note">{a.note}</p>
    </div>
  );
}

/** Calls `load` when `key` changes, at most once per `minMs`, keeping the last answer. */
function useThrottled<T>(load: () => Promise<T>, key: string, minMs: number): [T | null, string | null] {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const last = useRef(0);
  const pending = useRef<number | undefined>(undefined);
  useEffect(() => {
    let live = true;
    const run = () => {
      last.current = Date.now();
      pending.current = undefined;
      load().then(
        (v) => live && (setValue(v), setError(null)),
        (err: unknown) => live && setError((err as Error).message),
      );
    };
    const wait = last.current + minMs - Date.now();
    if (wait <= 0) run();
    else pending.current = window.setTimeout(run, wait);
    return () => {
      live = false;
      window.clearTimeout(pending.current);
    };
    // `load` changes with the filters, which are part of `key`.
  }, [key]);
  return [value, error];
}

function SessionPanel(props: {
  api: Api;
  pace: Pace;
  session: SessionLiveView;
  onOpenTask: (taskId: string) => void;
  onNotice: (text: string) => void;
}) {
  const { api, session, pace } = props;
  const sid = encodeURIComponent(session.sessionId);
  const [state, setState] = useState<TaskState | ''>('');
  const [errorType, setErrorType] = useState('');
  const [confirming, setConfirming] = useState(false);
  // Re-read when tasks finish (the finished count changes), not on every event.
  const progressKey = `${finished(session)}:${session.counts.running}`;
  const [summary, summaryError] = useThrottled(
    () => api.get<SessionSummaryAnswer>(`/v1/sessions/${sid}/summary`),
    `${session.sessionId}:${progressKey}`,
    pace.refreshMs,
  );
  const query = new URLSearchParams({ limit: '50' });
  if (state) query.set('state', state);
  if (errorType) query.set('errorType', errorType);
  const [page, pageError] = useThrottled(
    () => api.get<TaskPageView>(`/v1/sessions/${sid}/tasks?${query.toString()}`),
    `${session.sessionId}:${query.toString()}:${progressKey}`,
    pace.refreshMs,
  );

  const cancel = async () => {
    setConfirming(false);
    try {
      const answer = await api.post<{ cancelled: number }>(`/v1/sessions/${sid}/cancel`);
      props.onNotice(`cancelled ${answer.cancelled} tasks of ${session.sessionId}`);
    } catch (err) {
      props.onNotice(`cancel failed: ${(err as Error).message}`);
    }
  };

  return (
    <section class="panel session" data-session-panel={session.sessionId}>
      <h2>
        Session <span class="id">{session.sessionId}</span>
        {!session.done && (
          <button class="danger" onClick={() => setConfirming(true)}>
            Cancel session
          </button>
        )}
      </h2>
      {confirming && (
        <Confirm
          text={`Cancel session ${session.sessionId}? Its ${session.counts.pending} pending tasks never start and its ${session.counts.running} running tasks are stopped.`}
          onYes={() => void cancel()}
          onNo={() => setConfirming(false)}
        />
      )}
      <Progress session={session} />
      <dl class="totals small">
        {TASK_STATES.map((s) => (
          <Stat key={s} name={s} value={session.counts[s]} />
        ))}
        <Stat name="completions/s" value={session.completionsPerSec.toFixed(1)} />
      </dl>
      {summaryError && <p class="error">{summaryError}</p>}
      {summary && (
        <div class="summary">
          <div class="latency">
            <h3>Time queued and time running</h3>
            <table class="percentiles">
              <thead>
                <tr>
                  <th />
                  <th>p50</th>
                  <th>p95</th>
                  <th>p99</th>
                  <th>max</th>
                  <th>tasks</th>
                </tr>
              </thead>
              <tbody>
                {(['queued', 'running'] as const).map((k) => (
                  <tr key={k} data-latency={k}>
                    <th>{k}</th>
                    <td>{formatMs(summary[k].p50Ms)}</td>
                    <td>{formatMs(summary[k].p95Ms)}</td>
                    <td>{formatMs(summary[k].p99Ms)}</td>
                    <td>{formatMs(summary[k].maxMs)}</td>
                    <td class="num">{summary[k].count}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <div class="charts">
              <Histogram title="time queued" color="#e9c46a" buckets={summary.queued.buckets} />
              <Histogram title="time running" color="#457b9d" buckets={summary.running.buckets} />
            </div>
          </div>
          <div class="failures">
            <h3>Failures by error type</h3>
            {summary.failures.length === 0 ? (
              <p class="empty">No failure.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th>error type</th>
                    <th>failed tasks</th>
                    <th>failed attempts</th>
                    <th>example</th>
                  </tr>
                </thead>
                <tbody>
                  {summary.failures.map((f) => (
                    <tr key={f.errorType} data-error-type={f.errorType}>
                      <td>
                        <a
                          href="#"
                          onClick={(e) => {
                            e.preventDefault();
                            setErrorType(f.errorType);
                            setState('');
                          }}
                        >
                          {f.errorType}
                        </a>
                      </td>
                      <td class="num">{f.failedTasks}</td>
                      <td class="num">{f.failedAttempts}</td>
                      <td>
                        <a
                          href="#"
                          onClick={(e) => {
                            e.preventDefault();
                            props.onOpenTask(f.exampleTaskId);
                          }}
                        >
                          {f.exampleMessage}
                        </a>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </div>
      )}
      <div class="tasks">
        <h3>Tasks</h3>
        <div class="filters">
          <label>
            state{' '}
            <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value as TaskState | '')}>
              <option value="">finished</option>
              {TASK_STATES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label>
            error type{' '}
            <select value={errorType} onChange={(e) => setErrorType((e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {(summary?.failures ?? []).map((f) => (
                <option key={f.errorType} value={f.errorType}>
                  {f.errorType}
                </option>
              ))}
              {errorType && !summary?.failures.some((f) => f.errorType === errorType) && (
                <option value={errorType}>{errorType}</option>
              )}
            </select>
          </label>
        </div>
        {pageError && <p class="error">{pageError}</p>}
        {page && <TaskTable page={page} onOpen={props.onOpenTask} />}
      </div>
    </section>
  );
}

function TaskTable(props: { page: TaskPageView; onOpen: (taskId: string) => void }) {
  if (props.page.tasks.length === 0) return <p class="empty">No task matches.</p>;
  return (
    <table class="task-table">
      <thead>
        <tr>
          <th>#</th>
          <th>state</th>
          <th>attempts</th>
          <th>error</th>
          <th>queued</th>
          <th>ran</th>
        </tr>
      </thead>
      <tbody>
        {props.page.tasks.map((t) => (
          <tr key={t.taskId} data-task={t.taskId} onClick={() => props.onOpen(t.taskId)}>
            <td class="num">{t.index}</td>
            <td class={`state ${t.state}`}>{t.state}</td>
            <td class="num">{t.attempts}</td>
            <td>{t.errorType ? `${t.errorType}: ${t.errorMessage ?? ''}` : ''}</td>
            <td>{t.startedAt === null ? '' : formatMs(t.startedAt - t.submittedAt)}</td>
            <td>{t.startedAt === null || t.finishedAt === null ? '' : formatMs(t.finishedAt - t.startedAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function TaskPanel(props: { api: Api; taskId: string; onClose: () => void; onNotice: (text: string) => void }) {
  const { api, taskId } = props;
  const [task, setTask] = useState<TaskDetailView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const path = `/v1/tasks/${encodeURIComponent(taskId)}`;
  const load = useCallback(() => {
    api.get<TaskDetailView>(path).then(setTask, (err: unknown) => setError((err as Error).message));
  }, [api, path]);
  useEffect(load, [load]);
  // A task still live is read again every 2 s.
  useEffect(() => {
    if (!task || task.state === 'succeeded' || task.state === 'failed' || task.state === 'cancelled') return undefined;
    const timer = window.setTimeout(load, 2000);
    return () => window.clearTimeout(timer);
  }, [task, load]);
  const cancel = async () => {
    setConfirming(false);
    try {
      const answer = await api.post<{ cancelled: boolean; state: string }>(`${path}/cancel`);
      props.onNotice(answer.cancelled ? `cancelled task ${taskId}` : `task ${taskId} is already ${answer.state}`);
      load();
    } catch (err) {
      props.onNotice(`cancel failed: ${(err as ApiCallError).message}`);
    }
  };
  return (
    <section class="panel task" data-task-panel={taskId}>
      <h2>
        Task <span class="id">{taskId}</span>
        {task && (task.state === 'pending' || task.state === 'running') && (
          <button class="danger" onClick={() => setConfirming(true)}>
            Cancel task
          </button>
        )}
        <button onClick={props.onClose}>Close</button>
      </h2>
      {confirming && (
        <Confirm text={`Cancel task ${taskId}?`} onYes={() => void cancel()} onNo={() => setConfirming(false)} />
      )}
      {error && <p class="error">{error}</p>}
      {task && (
        <div>
          <p>
            <span class={`state ${task.state}`}>{task.state}</span> · attempt {task.attempt} of {task.maxAttempts}
            {task.reason ? ` · ${task.reason}` : ''}
          </p>
          {task.error && (
            <div class="task-error">
              <h3>
                {task.error.type}: {task.error.message}
              </h3>
              <pre class="stack">{task.error.stack.join('')}</pre>
            </div>
          )}
          <h3>Attempts</h3>
          <table>
            <thead>
              <tr>
                <th>#</th>
                <th>agent</th>
                <th>outcome</th>
                <th>ran</th>
                <th>error</th>
              </tr>
            </thead>
            <tbody>
              {task.history.map((a) => (
                <tr key={a.attempt}>
                  <td class="num">{a.attempt}</td>
                  <td class="id">{a.owner}</td>
                  <td>{a.outcome}</td>
                  <td>{formatMs(a.finishedAt - a.startedAt)}</td>
                  <td>{a.error ? `${a.error.type}: ${a.error.message}` : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Output</h3>
          {task.output.available ? (
            (task.output.attempts ?? []).length === 0 ? (
              <p class="empty">Nothing printed.</p>
            ) : (
              (task.output.attempts ?? []).map((o) => (
                <div key={o.attempt} class="output">
                  <h4>
                    attempt {o.attempt}
                    {o.truncated ? ' (last 8 KiB)' : ''}
                  </h4>
                  {o.stdout && <pre class="stdout">{o.stdout}</pre>}
                  {o.stderr && <pre class="stderr">{o.stderr}</pre>}
                </div>
              ))
            )
          ) : (
            <p class="note">{task.output.note}</p>
          )}
          <h3>Payload</h3>
          <pre>{JSON.stringify(task.payload, null, 2)}</pre>
          {task.state === 'succeeded' && (
            <>
              <h3>Result</h3>
              <pre>{JSON.stringify(task.result, null, 2)}</pre>
            </>
          )}
        </div>
      )}
    </section>
  );
}

function Confirm(props: { text: string; onYes: () => void; onNo: () => void }) {
  return (
    <div class="confirm" role="alertdialog" aria-label="confirm">
      <p>{props.text}</p>
      <button class="danger" onClick={props.onYes}>
        Yes, cancel
      </button>
      <button onClick={props.onNo}>No</button>
    </div>
  );
}

const token = takeToken();
const root = document.getElementById('app')!;
if (token === null) {
  render(
    <p class="error">
      No token: open the dashboard with the address that <code>htcgrid local up --http</code> (or{' '}
      <code>htcgrid ui</code>) printed, which ends in <code>#token=…</code>.
    </p>,
    root,
  );
} else {
  const api = new Api(token);
  (window as unknown as { htcgridApi: Api }).htcgridApi = api;
  const start = (pace: Pace) => render(<App api={api} pace={pace} />, root);
  // A failed call (a wrong token) still starts the page: its event stream reports the problem.
  api.get<{ grid: string }>('/v1').then(
    (info) => start(info.grid === 'aws' ? AWS_PACE : LOCAL_PACE),
    () => start(LOCAL_PACE),
  );
}
