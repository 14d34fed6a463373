// Worker-thread entry of an embedded grid's agent: its own database connection, runtimes and heartbeats.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import pino from 'pino';
import { nameThisThread, openLocalBackends, THREAD_NAMES } from '../backends/local';
import { Agent } from '../runtime/agent';
import { localAgentOptions } from './local-agent';
import {
  serializeError,
  sharedSlotCounters,
  sharedStats,
  type AgentThreadCommand,
  type AgentThreadData,
  type AgentThreadEvent,
} from './threaded-agent';

async function runAgentThread(port: MessagePort, data: AgentThreadData): Promise<void> {
  nameThisThread(THREAD_NAMES.agent);
  const post = (event: AgentThreadEvent): void => port.postMessage(event);
  const logger = pino(
    { level: data.logLevel, base: data.logBindings },
    { write: (line: string) => post({ type: 'log', line }) },
  );
  const { config, taskRoot } = data;
  const backends = openLocalBackends(data.dataDir, { logger, writeLock: data.writeLock });
  const diskFull = new Int32Array(data.diskFullBuffer);
  const agent = new Agent(
    localAgentOptions({
      config,
      backends,
      taskRoot,
      logger,
      owner: data.owner,
      slots: data.slots,
      slotOffset: data.slotOffset,
      stats: sharedStats(data.statsBuffer),
      onDiskFull: (full) => {
        Atomics.add(diskFull, 0, full ? 1 : -1);
        post({ type: 'disk-space', full });
      },
      slotCounters: sharedSlotCounters(data.slotsBuffer),
      onOutput: data.forwardOutput
        ? (taskId, stream, chunk) => post({ type: 'output', taskId, stream, chunk })
        : undefined,
    }),
  );
  let stopping: Promise<void> | undefined;
  const finish = async (drain: Promise<void>): Promise<void> => {
    try {
      await drain;
    } finally {
      await backends.close();
      post({ type: 'stopped' });
      port.close();
    }
  };
  port.on('message', (command: AgentThreadCommand) => {
    if (command.type !== 'stop') return;
    if (stopping) {
      void agent.stop(0);
      return;
    }
    stopping = finish(agent.stop(command.graceMs)).catch((err: unknown) =>
      logger.error({ err }, 'agent thread stopped with an error'),
    );
  });
  try {
    await agent.start();
  } catch (err) {
    post({ type: 'start-failed', error: serializeError(err) });
    stopping ??= finish(Promise.resolve());
    return;
  }
  post({ type: 'started' });
}

if (parentPort) {
  const port = parentPort;
  runAgentThread(port, workerData as AgentThreadData).catch((err: unknown) => {
    port.postMessage({ type: 'start-failed', error: serializeError(err) } satisfies AgentThreadEvent);
    port.close();
  });
}
