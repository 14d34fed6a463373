// Where the agent's EMF lines go: stdout (the container's log driver ships them), or a CloudWatch agent's EMF socket.
import dgram from 'node:dgram';
import net from 'node:net';
import { ConfigError } from '../../core/errors';

/**
 * A CloudWatch agent's EMF listener: its `emf` input takes one JSON document per line over TCP, or one per datagram
 * over UDP, on port 25888 by default
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_CloudWatch_Agent.html).
 */
export interface EmfEndpoint {
  readonly protocol: 'tcp' | 'udp';
  readonly host: string;
  readonly port: number;
}

/** `tcp://host:port` or `udp://host:port`; throws a `ConfigError` naming the value and the expected form. */
export function parseEmfEndpoint(value: string, source = 'AWS_EMF_AGENT_ENDPOINT'): EmfEndpoint {
  const m = /^(tcp|udp):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new ConfigError([
      `${source}: ${JSON.stringify(value)} is not an EMF endpoint: use tcp://host:port or udp://host:port (a CloudWatch agent's emf input listens on 25888), or unset it for stdout`,
    ]);
  }
  return { protocol: m[1] as 'tcp' | 'udp', host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

/** Writes EMF lines; `close()` sends what is buffered and ends the connection. */
export interface EmfSink {
  /** Where the lines go, for the logs. */
  readonly target: string;
  write(line: string): void;
  close(): Promise<void>;
}

/** Lines held while a TCP connection is (re)opened; beyond it the oldest are dropped (the metrics are best effort). */
const MAX_PENDING_LINES = 1000;

/** How long `close()` waits for the listener to close the TCP connection. */
const CLOSE_TIMEOUT_MS = 5000;

export interface EmfSinkOptions {
  /** Told when lines cannot be delivered (they are dropped: task metrics never stop the agent). */
  readonly onError?: (err: Error) => void;
  /** @default process.stdout */
  readonly stdout?: NodeJS.WritableStream;
}

/** The sink for `endpoint` (as `AWS_EMF_AGENT_ENDPOINT`): stdout when it is unset or empty. */
export function openEmfSink(endpoint: string | undefined, options: EmfSinkOptions = {}): EmfSink {
  const onError = options.onError ?? (() => undefined);
  if (!endpoint?.trim()) {
    const out = options.stdout ?? process.stdout;
    return { target: 'stdout', write: (line) => void out.write(`${line}\n`), close: () => Promise.resolve() };
  }
  const at = parseEmfEndpoint(endpoint);
  return at.protocol === 'udp' ? udpSink(at, onError) : tcpSink(at, onError);
}

function udpSink(at: EmfEndpoint, onError: (err: Error) => void): EmfSink {
  const socket = dgram.createSocket(net.isIPv6(at.host) ? 'udp6' : 'udp4');
  socket.on('error', onError);
  let sending = 0;
  let drained: (() => void) | undefined;
  return {
    target: `udp://${at.host}:${at.port}`,
    write(line) {
      sending++;
      socket.send(`${line}\n`, at.port, at.host, (err) => {
        if (err) onError(err);
        if (--sending === 0) drained?.();
      });
    },
    async close() {
      if (sending > 0) await new Promise<void>((resolve) => (drained = resolve));
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

function tcpSink(at: EmfEndpoint, onError: (err: Error) => void): EmfSink {
  let socket: net.Socket | undefined;
  let connected = false;
  const pending: string[] = [];
  const connect = (): net.Socket => {
    const s = net.createConnection({ host: at.host, port: at.port });
    s.setNoDelay(true);
    s.on('connect', () => {
      connected = true;
      for (const line of pending.splice(0)) s.write(line);
    });
    s.on('error', onError);
    // A dropped connection is reopened by the next write; what was pending then is kept.
    s.on('close', () => {
      if (socket === s) socket = undefined;
      connected = false;
    });
    return s;
  };
  return {
    target: `tcp://${at.host}:${at.port}`,
    write(line) {
      socket ??= connect();
      if (connected) {
        socket.write(`${line}\n`);
        return;
      }
      pending.push(`${line}\n`);
      if (pending.length > MAX_PENDING_LINES) pending.shift();
    },
    async close() {
      const s = socket;
      if (!s) return;
      if (!connected && !s.destroyed) {
        await new Promise<void>((resolve) => {
          s.once('connect', resolve);
          s.once('close', resolve);
        });
      }
      socket = undefined;
      if (s.destroyed) return;
      await new Promise<void>((resolve) => {
        // A listener that never closes its end does not hold the agent's exit.
        const timer = setTimeout(() => s.destroy(), CLOSE_TIMEOUT_MS);
        s.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        s.end();
      });
    },
  };
}
