// An embedded grid with the HTTP API's handlers on it, as the API and dashboard tests start it: the grid (running the
// HTTP fixture worker), its request ledger, and the handlers a server or a stand-in function URL answers with.
import fs from 'node:fs';
import path from 'node:path';
import { SqliteRequestLedger } from '../../lib/backends/local';
import type { GridConfig } from '../../lib/core';
import { ApiHandlers, type ApiHandlersOptions } from '../../lib/http';
import { startEmbeddedGrid, type EmbeddedGrid, type EmbeddedGridOptions } from '../../lib/local-grid';
import { FIXTURES, tempDir } from './local-grid';

export interface ApiGrid {
  readonly dataDir: string;
  readonly grid: EmbeddedGrid;
  readonly ledger: SqliteRequestLedger;
  readonly api: ApiHandlers;
  /** Closes the ledger and the grid (giving running tasks 5 s), then removes the folder. */
  close(): Promise<void>;
}

export interface ApiGridOptions {
  /** Prefix of the temporary grid folder. */
  readonly prefix: string;
  readonly config: GridConfig;
  /** What `GET /v1` says the grid is. */
  readonly gridKind: ApiHandlersOptions['gridKind'];
  /** Options of the embedded grid besides its folder, configuration and worker (the HTTP fixture worker). */
  readonly grid?: Partial<Omit<EmbeddedGridOptions, 'dataDir' | 'config'>>;
  /** More options of the handlers, given the grid (its agents, its changes). */
  readonly api?: (grid: EmbeddedGrid) => Partial<ApiHandlersOptions>;
}

export async function startApiGrid(options: ApiGridOptions): Promise<ApiGrid> {
  const { config } = options;
  const dataDir = tempDir(options.prefix);
  const grid = await startEmbeddedGrid({
    dataDir,
    config,
    worker: path.join(FIXTURES, 'http', 'worker'),
    ...options.grid,
  });
  const ledger = SqliteRequestLedger.open(dataDir);
  const api = new ApiHandlers({
    config,
    client: grid.client,
    table: grid.backends.table,
    store: grid.backends.store,
    ledger,
    gridKind: options.gridKind,
    ...options.api?.(grid),
  });
  return {
    dataDir,
    grid,
    ledger,
    api,
    async close() {
      await ledger.close();
      await grid.close(5_000);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
