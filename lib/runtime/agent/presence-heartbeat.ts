// Keeps an agent registered while it runs: a heartbeat every few seconds, `draining` when it stops taking tasks, and
// removal on a clean stop, so clients can say "no agent is alive" within seconds instead of waiting silently.
import type { Logger } from 'pino';
import { AGENT_HEARTBEAT_MS, type AgentTaskCounts } from '../../core';
import { silentLogger } from '../../logging';
import type { AgentPresence, AgentRegistry } from '../../ports';

/** What changes between heartbeats: read at each one. */
export interface AgentActivity {
  readonly busySlots: number;
  readonly runtimeRestarts: number;
  readonly tasks: AgentTaskCounts;
  /** @default - not told (an agent whose backends never fill a disk) */
  readonly waitingForDisk?: boolean;
}

export interface PresenceHeartbeatOptions {
  readonly registry: AgentRegistry;
  readonly presence: Omit<
    AgentPresence,
    'heartbeatAt' | 'expiresAt' | 'state' | 'busySlots' | 'runtimeRestarts' | 'tasks' | 'waitingForDisk'
  >;
  /**
   * The agent's busy slots, runtime restarts, task counts and wait for disk space, recorded with each heartbeat.
   * @default - not recorded
   */
  readonly activity?: () => AgentActivity;
  /** @default 2000 ms (`AGENT_HEARTBEAT_MS.local`) */
  readonly intervalMs?: number;
  /** How long a heartbeat counts. @default three intervals */
  readonly expiryMs?: number;
  /** @default Date.now */
  readonly clock?: () => number;
  readonly logger?: Logger;
}

export class PresenceHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private state: AgentPresence['state'] = 'alive';
  private stopped: Promise<void> | undefined;
  /** The heartbeat being written: removal waits for it, so a late write never re-registers a stopped agent. */
  private inflight: Promise<void> = Promise.resolve();
  /** A heartbeat asked for while one was being written: written after it, with what is true by then. */
  private next: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly expiryMs: number;
  private readonly clock: () => number;
  private readonly logger: Logger;

  constructor(private readonly options: PresenceHeartbeatOptions) {
    this.intervalMs = options.intervalMs ?? AGENT_HEARTBEAT_MS.local;
    this.expiryMs = options.expiryMs ?? this.intervalMs * 3;
    this.clock = options.clock ?? Date.now;
    this.logger = options.logger ?? silentLogger();
  }

  /** Registers the agent (awaited, so a failure to register is seen at start) and heartbeats from then on. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch((err: unknown) => this.warn(err)), this.intervalMs);
    this.timer.unref();
  }

  /** Tells clients the agent takes no more tasks. */
  async drain(): Promise<void> {
    if (this.stopped || this.state === 'draining') return;
    this.state = 'draining';
    await this.beat().catch((err: unknown) => this.warn(err));
  }

  /**
   * Heartbeats now rather than at the next tick, so clients see a change (the agent started or stopped waiting for
   * disk space) at once. Never rejects: a heartbeat not recorded is logged, and the next tick tries again.
   */
  refresh(): Promise<void> {
    return this.beat().catch((err: unknown) => this.warn(err));
  }

  /** Stops heartbeating and removes the agent. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      clearInterval(this.timer);
      await this.inflight.catch(() => undefined);
      await this.options.registry.remove(this.options.presence.agentId).catch((err: unknown) => this.warn(err));
    })();
    return this.stopped;
  }

  /**
   * One write at a time: two at once would race on the registry's record (the file registry's temporary file). Beats
   * asked for while one is written become one, written after it.
   */
  private beat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.next ??= this.inflight
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.write();
      });
    this.inflight = this.next;
    return this.next;
  }

  private write(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const now = this.clock();
    const activity = this.options.activity?.();
    return this.options.registry.heartbeat({
      ...this.options.presence,
      ...(activity && {
        busySlots: activity.busySlots,
        runtimeRestarts: activity.runtimeRestarts,
        tasks: { ...activity.tasks },
        ...(activity.waitingForDisk !== undefined && { waitingForDisk: activity.waitingForDisk }),
      }),
      heartbeatAt: now,
      expiresAt: now + this.expiryMs,
      state: this.state,
    });
  }

  private warn(err: unknown): void {
    this.logger.warn({ err, agentId: this.options.presence.agentId }, 'agent heartbeat not recorded; will retry');
  }
}
