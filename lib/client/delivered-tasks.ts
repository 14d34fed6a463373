// Which tasks of a session a results stream delivered: one bit per task index, so a task is never delivered twice.
import { taskIndexOf } from '../core/task';

/**
 * The task indexes a results stream delivered, one bit each: 125 KB for a million tasks, however they were found
 * (the listing, a notice, a full re-list after a missed result). Grows with the highest index seen.
 */
export class DeliveredTasks {
  private bits = new Uint8Array(0);
  private count = 0;
  /** One past the last byte that holds a set bit (the bytes after it, room to grow, are 0). */
  private end = 0;

  /** How many distinct tasks were delivered. */
  get size(): number {
    return this.count;
  }

  has(index: number): boolean {
    const byte = Math.floor(index / 8);
    return byte < this.bits.length && (this.bits[byte]! & (1 << (index % 8))) !== 0;
  }

  /** Records the task at `index` as delivered; false when it was already. */
  add(index: number): boolean {
    if (!Number.isSafeInteger(index) || index < 0) {
      throw new RangeError(`a task index is a whole number from 0 (got ${index})`);
    }
    if (this.has(index)) return false;
    const byte = Math.floor(index / 8);
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2, 64));
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[byte]! |= 1 << (index % 8);
    this.count++;
    if (byte >= this.end) this.end = byte + 1;
    return true;
  }

  /**
   * The set as bytes, bit `i % 8` of byte `i / 8` for index `i`, up to the last byte that holds one: what a results
   * cursor of the HTTP API carries (see `fromBytes`). A view of the set's own bytes: valid until the next `add`.
   */
  toBytes(): Uint8Array {
    return this.bits.subarray(0, this.end);
  }

  /** The set whose bytes `toBytes` gave (copied). */
  static fromBytes(bytes: Uint8Array): DeliveredTasks {
    const set = new DeliveredTasks();
    set.bits = Uint8Array.from(bytes);
    for (const byte of set.bits) {
      for (let b = byte; b !== 0; b &= b - 1) set.count++;
    }
    set.end = set.bits.length;
    while (set.end > 0 && set.bits[set.end - 1] === 0) set.end--;
    return set;
  }
}

/**
 * Whether a task of `sessionId` (by id) is one `delivered` lacks: what a re-read asks the table for (see
 * `TaskTable.readTerminalWanted`). An id not of the session's form is taken as lacking: the reader judges it by index.
 */
export function lackedBy(sessionId: string, delivered: DeliveredTasks): (taskId: string) => boolean {
  return (taskId) => {
    const index = taskIndexOf(sessionId, taskId);
    return index === undefined || !delivered.has(index);
  };
}
