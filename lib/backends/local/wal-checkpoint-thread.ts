// Worker-thread entry of `startWalCheckpoints`: checkpoints the grid database from a connection and thread of its own.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { watchChangeFiles } from './database-changes';
import { nameThisThread, THREAD_NAMES } from './thread-name';
import {
  CheckpointTimer,
  lowerThisThreadPriority,
  openWalCheckpointer,
  type CheckpointThreadData,
  type CheckpointThreadEvent,
} from './wal-checkpointer';

function runCheckpointThread(port: MessagePort, data: CheckpointThreadData): void {
  nameThisThread(THREAD_NAMES.checkpoint);
  const post = (event: CheckpointThreadEvent): void => port.postMessage(event);
  let opened;
  try {
    opened = openWalCheckpointer(data.dbPath, data.syncFd, {
      writeLock: data.writeLock,
      onSkipped: (err) => post({ type: 'debug', message: String(err) }),
    });
  } catch (err) {
    post({ type: 'start-failed', message: String(err) });
    port.close();
    return;
  }
  const { db, checkpointer } = opened;
  const timer = new CheckpointTimer(checkpointer, {
    intervalMs: data.intervalMs,
    onError: (err) => post({ type: 'warning', message: String(err) }),
    idleWake: (wake) => watchChangeFiles(data.dbPath, wake),
  });
  const lowPriorityTid = lowerThisThreadPriority();
  timer.start();
  // The timer is unref'd: the port keeps the thread alive until `stop` closes it.
  port.on('message', () => {
    timer.stop();
    db.close();
    port.close();
  });
  post({ type: 'started', lowPriorityTid });
}

if (parentPort) runCheckpointThread(parentPort, workerData as CheckpointThreadData);
