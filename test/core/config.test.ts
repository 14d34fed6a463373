// The configuration schema: defaults, HTC-Grid keys, overrides and the errors users see.
import fs from 'node:fs';
import path from 'node:path';
import { applyOverrides, compileConfig, ConfigError, DEFAULT_STALLED_AFTER_MS } from '../../lib/core';

describe('grid configuration', () => {
  it('applies documented defaults to an empty document', () => {
    const config = compileConfig({});
    expect(config.handler).toBe('lambda_function.lambda_handler');
    expect(config.runtime.name).toBe('python3.12');
    expect(config.maxAttempts).toBe(3);
    expect(config.leaseExpiryMs).toBe(30_000);
    expect(config.leaseRefreshMs).toBe(5_000);
    expect(config.taskTimeoutMs).toBe(900_000);
    expect(config.slots).toBeGreaterThanOrEqual(1);
  });

  it("reads the handler from HTC-Grid's agent_configuration.lambda keys and keeps the HTC-Grid keys it ignores", () => {
    const config = compileConfig({
      project_name: 'Mainline',
      max_htc_agents: 100,
      eks_worker_groups: [{ node_group_name: 'worker-small-spot' }],
      agent_configuration: {
        lambda: {
          lambda_handler_file_name: 'portfolio_pricing_engine',
          lambda_handler_function_name: 'lambda_handler',
        },
      },
    });
    expect(config.handler).toBe('portfolio_pricing_engine.lambda_handler');
    expect(config.gridName).toBe('mainline');
    expect(config.document.eks_worker_groups).toEqual([{ node_group_name: 'worker-small-spot' }]);
    expect(config.ignoredKeys).toEqual([
      expect.stringMatching(/^configuration: eks_worker_groups: an HTC-Grid key ignored here \(.+\)$/),
    ]);
  });

  it('refuses an unknown key, at the top or under agent_configuration.lambda, naming the closest known one', () => {
    const compile = () =>
      compileConfig(
        { max_attemps: 5, agent_configuration: { lambda: { lambda_handler_fle_name: 'x', minCPU: '800' } } },
        'grid.json',
      );
    expect(compile).toThrow(ConfigError);
    expect(compile).toThrow(/grid\.json: max_attemps: unknown configuration key: did you mean max_attempts\?/);
    expect(compile).toThrow(
      /agent_configuration\.lambda\.lambda_handler_fle_name: unknown configuration key: did you mean agent_configuration\.lambda\.lambda_handler_file_name\?/,
    );
    expect(() => compileConfig({ runtime: 'nodejs22.x' })).toThrow(
      /runtime: not a top-level key: put it under agent_configuration\.lambda/,
    );
    // Reported with the invalid values, all at once.
    expect(() => compileConfig({ max_attemps: 5, slots: 0 })).toThrow(/max_attemps[\s\S]*slots/);
  });

  it("compiles HTC-Grid's own python_runtime_grid_config.json, noting each key it ignores", () => {
    const config = compileConfig(
      JSON.parse(
        fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'infra', 'python_runtime_grid_config.json'), 'utf8'),
      ),
    );
    expect(config.handler).toBe('portfolio_pricing_engine.price');
    expect(config.ignoredKeys).toHaveLength(8);
    expect(config.ignoredKeys).toContainEqual(
      expect.stringMatching(/agent_configuration\.lambda\.minCPU: an HTC-Grid key/),
    );
  });

  it('lets overrides win over the file, coercing numbers from strings', () => {
    const doc = applyOverrides(
      {
        agent_configuration: { lambda: { lambda_handler_file_name: 'a', lambda_handler_function_name: 'b' } },
        slots: 4,
      },
      { lambda_handler_file_name: 'mock_compute_engine', slots: '2', max_attempts: undefined },
    );
    const config = compileConfig(doc);
    expect(config.handler).toBe('mock_compute_engine.b');
    expect(config.slots).toBe(2);
  });

  it('reports every invalid key at once, naming the key and the value', () => {
    let error: unknown;
    try {
      compileConfig({ max_attempts: 0, task_timeout_sec: 'soon', grid_name: 'Bad Name' }, 'grid.json');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues.join('\n');
    expect(issues).toMatch(/grid\.json: max_attempts: .*\(got 0\)/);
    expect(issues).toMatch(/task_timeout_sec: .*\(got "soon"\)/);
    expect(issues).toMatch(/grid_name/);
  });

  it("reads the agent's take-back threshold stalled_after_ms (20 ms by default), refusing a bad value with the fix", () => {
    expect(compileConfig({}).stalledAfterMs).toBe(DEFAULT_STALLED_AFTER_MS);
    expect(DEFAULT_STALLED_AFTER_MS).toBe(20);
    // Not written into the document unless set: a deployed grid's configuration stays as it was.
    expect(compileConfig({}).document).not.toHaveProperty('stalled_after_ms');
    expect(compileConfig({ stalled_after_ms: 50 }).stalledAfterMs).toBe(50);
    expect(compileConfig(applyOverrides({ stalled_after_ms: 50 }, { stalled_after_ms: '7.5' })).stalledAfterMs).toBe(
      7.5,
    );
    for (const bad of [-1, 0, 'soon', null]) {
      expect(() => compileConfig({ stalled_after_ms: bad }, 'grid.json')).toThrow(
        new RegExp(
          `grid\\.json: stalled_after_ms: use a number of milliseconds above 0, e\\.g\\. 20 \\(the default\\) \\(got ${JSON.stringify(bad)}\\)`,
        ),
      );
    }
  });

  it('rejects a lease refresh that is not below the lease expiry', () => {
    expect(() => compileConfig({ task_ttl_refresh_interval_sec: 30, task_ttl_expiration_offset_sec: 30 })).toThrow(
      /task_ttl_refresh_interval_sec \(30\) must be below task_ttl_expiration_offset_sec/,
    );
  });

  it('rejects a runtime AWS no longer supports and names the fix', () => {
    expect(() => compileConfig({ agent_configuration: { lambda: { runtime: 'python3.8' } } })).toThrow(
      /runtime "python3\.8" is not supported.*"python3\.12"/,
    );
    expect(() => compileConfig({ agent_configuration: { lambda: { runtime: 'nodejs20.x' } } })).toThrow(/nodejs22\.x/);
  });
});
