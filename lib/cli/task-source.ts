// Streams tasks from a JSON Lines file or stdin, one event per line, with line numbers in every error.
import fs from 'node:fs';
import readline from 'node:readline';
import { InvalidTaskError } from '../core';
import { UsageError } from './usage-error';

function open(file: string): NodeJS.ReadableStream {
  if (file === '-') return process.stdin;
  if (!fs.existsSync(file)) throw new UsageError(`task file ${file} does not exist`);
  return fs.createReadStream(file, { encoding: 'utf8' });
}

/** Yields each non-blank line parsed as JSON. A bad line throws `InvalidTaskError` naming the line. */
export async function* readTasks(file: string): AsyncGenerator<unknown> {
  const lines = readline.createInterface({ input: open(file), crlfDelay: Infinity });
  let lineNo = 0;
  let index = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as unknown;
    } catch (err) {
      throw new InvalidTaskError(index, `${file}:${lineNo}: not valid JSON (${(err as Error).message})`, {
        hint: 'write one JSON value per line (JSON Lines)',
      });
    }
    index++;
  }
}

/** Reads a whole task file once to validate it and count its tasks, so nothing is submitted if a line is bad. */
export async function countTasks(file: string): Promise<number> {
  let count = 0;
  for await (const _ of readTasks(file)) count++;
  return count;
}
