// Test helpers: an embedded grid on a temporary folder, and waiting on conditions instead of sleeping.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyOverrides, compileConfig, type GridConfigDocument } from '../../lib/core';
import { startEmbeddedGrid, type EmbeddedGrid } from '../../lib/cli';
import type { TaskResult } from '../../lib/client';
import { Agent, type AgentOptions } from '../../lib/runtime/agent';

export const FIXTURES = path.resolve(__dirname, '..', 'fixtures');

export function tempDir(prefix = 'htcgrid-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestGrid extends EmbeddedGrid {
  readonly dataDir: string;
}

/** The configuration test grids start from: two slots, and leases, reaper and back-off fast enough for a test. */
export const TEST_GRID_CONFIG: Readonly<GridConfigDocument> = {
  slots: 2,
  task_ttl_expiration_offset_sec: 3,
  task_ttl_refresh_interval_sec: 1,
  lease_check_interval_sec: 0.2,
  reaper_interval_sec: 0.5,
  empty_task_queue_backoff_timeout_sec: 0.01,
};

/** Starts an embedded grid on a fresh folder running `worker` with `overrides` on top of fast test timings. */
export async function startTestGrid(
  worker: string | undefined,
  overrides: Record<string, unknown> = {},
  dataDir = tempDir(),
): Promise<TestGrid> {
  const config = compileConfig(applyOverrides({ ...TEST_GRID_CONFIG }, overrides), 'test');
  const grid = await startEmbeddedGrid({ dataDir, config, worker });
  return Object.assign(grid, { dataDir });
}

/** What `gridForEachTest` gives a test: its grid, and a way to start the test's own agent on it. */
export interface GridOfEachTest {
  /** The grid of the running test. */
  grid(): TestGrid;
  /** Starts an agent on the grid's backends; it is stopped after the test, before the grid closes. */
  startAgent(options: Omit<AgentOptions, keyof TestGrid['backends']>): Promise<Agent>;
}

/** For each test of the calling `describe`: a grid with no agent of its own (the test starts one), closed after it. */
export function gridForEachTest(): GridOfEachTest {
  let grid: TestGrid | undefined;
  let agent: Agent | undefined;
  beforeEach(async () => {
    grid = await startTestGrid(undefined);
  });
  afterEach(async () => {
    await agent?.stop(0);
    agent = undefined;
    await grid?.close(0);
  });
  const current = (): TestGrid => {
    if (!grid) throw new Error('gridForEachTest: no grid outside a test');
    return grid;
  };
  return {
    grid: current,
    async startAgent(options) {
      agent = new Agent({ ...current().backends, ...options });
      await agent.start();
      return agent;
    },
  };
}

export async function collect(results: AsyncIterable<TaskResult>): Promise<TaskResult[]> {
  const all: TaskResult[] = [];
  for await (const r of results) all.push(r);
  return all.sort((a, b) => a.index - b.index);
}

/** Polls `condition` until it holds or `timeoutMs` passes. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
