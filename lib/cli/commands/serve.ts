// `htcgrid serve` and `htcgrid local up --http`: the HTTP API of a local grid folder, on loopback, behind a token.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { SqliteRequestLedger } from '../../backends/local';
import { AGENT_HEARTBEAT_MS, compileConfig, type GridConfig } from '../../core';
import {
  DEFAULT_API_PORT,
  ApiHandlers,
  GridApiServer,
  registryAgents,
  type AgentDirectory,
  type OutputTails,
} from '../../http';
import { createLogger, type Logger } from '../../logging';
import { readConfigFile } from '../config-loader';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../local-grid';
import { LOCAL_CONFIG_FILE } from '../grid-target';
import * as output from '../output';
import { UsageError } from '../usage-error';

/** Where a grid folder's HTTP API tells clients how to reach it (URL and token; readable by its owner only). */
export const CLIENT_CONFIG_FILE = 'client.json';

/** The client configuration file `Grid.connect()` and `htcgrid.compat.AWSConnector` read. */
export interface LocalClientConfig {
  readonly api_url: string;
  readonly api_token: string;
  readonly grid: 'local';
}

export interface HttpAddress {
  readonly host: string;
  readonly port: number;
}

/** `--http` with no value, `host:port`, `:port`, `port` or `[v6]:port`; loopback and port 8642 by default. */
export function parseHttpAddress(value: string | boolean | undefined): HttpAddress {
  if (value === undefined || value === true || value === '') return { host: '127.0.0.1', port: DEFAULT_API_PORT };
  const text = String(value).trim();
  const m = /^\d+$/.test(text)
    ? [text, undefined, '', text]
    : /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(text);
  const host = m ? (m[1] ?? (m[2] || '127.0.0.1')) : '';
  const port = m?.[3] ? Number(m[3]) : DEFAULT_API_PORT;
  if (!m || port > 65535) {
    throw new UsageError(
      `--http ${text} is not an address: use host:port (e.g. 127.0.0.1:${DEFAULT_API_PORT}) or a port`,
    );
  }
  return { host, port };
}

export interface LocalHttpApiOptions {
  readonly dir: string;
  readonly config: GridConfig;
  /** The grid whose client and backends serve the requests. */
  readonly grid: EmbeddedGrid;
  readonly address: HttpAddress;
  readonly logger: Logger;
  /** @default - the grid folder's agent registry */
  readonly agents?: AgentDirectory;
  readonly outputs?: OutputTails;
  readonly outputNote?: string;
}

export interface LocalHttpApi {
  readonly url: string;
  readonly token: string;
  readonly clientConfigFile: string;
  close(): Promise<void>;
}

/**
 * Serves a grid folder's HTTP API: a random token (or `HTCGRID_API_TOKEN`) guards it, and `<dir>/client.json`
 * (mode 0600) tells clients of this user where it is.
 */
export async function startLocalHttpApi(options: LocalHttpApiOptions): Promise<LocalHttpApi> {
  const token = process.env.HTCGRID_API_TOKEN || randomBytes(24).toString('base64url');
  const ledger = SqliteRequestLedger.open(options.dir);
  const api = new ApiHandlers({
    config: options.config,
    client: options.grid.client,
    table: options.grid.backends.table,
    store: options.grid.backends.store,
    ledger,
    gridKind: 'local',
    // Completions wake a waiting results stream; the 50 ms poll stays only as the fallback.
    changes: options.grid.backends.changes,
    pollIntervalMs: options.grid.backends.changes.watching ? 1_000 : undefined,
    // The dashboard's event stream is woken the same way: ended and queued tasks show at once, not at the next poll.
    overviewChanges: options.grid.backends.changes.watching
      ? [options.grid.backends.changes.tasks, options.grid.backends.changes.queue]
      : undefined,
    agents:
      options.agents ?? registryAgents(options.grid.backends.agents, { heartbeatEveryMs: AGENT_HEARTBEAT_MS.local }),
    outputs: options.outputs,
    outputNote: options.outputNote,
    logger: options.logger.child({ component: 'http-api' }),
  });
  let server: GridApiServer;
  try {
    server = await GridApiServer.start({ api, ...options.address, token, logger: options.logger });
  } catch (err) {
    await ledger.close();
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') {
      throw new UsageError(
        `${options.address.host}:${options.address.port} is in use: pass another address, e.g. --http 127.0.0.1:0 for any free port`,
      );
    }
    throw err;
  }
  if (!isLoopback(options.address.host)) {
    output.info(
      `warning: the HTTP API listens on ${options.address.host}, reachable from other hosts; only the token guards it and traffic is not encrypted`,
    );
  }
  const clientConfigFile = path.join(options.dir, CLIENT_CONFIG_FILE);
  const clientConfig: LocalClientConfig = { api_url: server.url, api_token: token, grid: 'local' };
  fs.rmSync(clientConfigFile, { force: true });
  fs.writeFileSync(clientConfigFile, `${JSON.stringify(clientConfig, null, 2)}\n`, { mode: 0o600 });
  return {
    url: server.url,
    token,
    clientConfigFile,
    async close() {
      await server.close();
      await ledger.close();
    },
  };
}

/** Prints how to reach the API: its URL and token, and where clients find both. */
export function printHttpApi(api: LocalHttpApi): void {
  output.info(`HTTP API on ${api.url} (token required: Authorization: Bearer ${api.token})`);
  output.info(`dashboard: ${api.url}/ui/#token=${api.token}`);
  output.info(`clients read ${api.clientConfigFile}: Grid.connect("${api.clientConfigFile}") in Python`);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export interface ServeFlags {
  readonly dir: string;
  readonly http?: string | boolean;
  readonly logLevel?: string;
  readonly logFile?: string;
}

/** `htcgrid serve`: the HTTP API of a grid folder that `htcgrid local up` runs in another process. */
export async function serveCommand(flags: ServeFlags): Promise<number> {
  const configPath = path.join(flags.dir, LOCAL_CONFIG_FILE);
  if (!fs.existsSync(configPath)) {
    throw new UsageError(
      `${flags.dir} is not a local grid folder (no ${LOCAL_CONFIG_FILE}): start one with \`htcgrid local up --dir ${flags.dir} --worker <dir>\` (add --http to serve the API from it)`,
    );
  }
  const config = compileConfig(readConfigFile(configPath), configPath);
  const logger = createLogger({ level: flags.logLevel ?? 'info', destination: flags.logFile ?? 2 });
  const grid = await startEmbeddedGrid({ dataDir: flags.dir, config, logger });
  let api: LocalHttpApi;
  try {
    api = await startLocalHttpApi({
      dir: flags.dir,
      config,
      grid,
      address: parseHttpAddress(flags.http),
      logger,
      outputNote:
        'worker output is captured by the process running the agent: serve the API from it (htcgrid local up --http) to see it here',
    });
  } catch (err) {
    await grid.close();
    throw err;
  }
  printHttpApi(api);
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await api.close();
  await grid.close();
  return 0;
}
