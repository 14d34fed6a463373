// Structured JSON logs (pino) for every long-running part of the grid; one line per event, with task/session ids.
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Minimum level; `HTCGRID_LOG_LEVEL` overrides it. */
  level?: string;
  /** Where lines go: a file descriptor (2 = stderr, the default) or a file path. */
  destination?: number | string;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = process.env.HTCGRID_LOG_LEVEL ?? options.level ?? 'info';
  const destination = pino.destination({ dest: options.destination ?? 2, sync: false, mkdir: true });
  return pino({ level, name: options.name ?? 'htcgrid', base: { pid: process.pid } }, destination);
}

/** A logger that drops everything, for library use and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
