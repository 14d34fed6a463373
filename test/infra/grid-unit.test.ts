// The grid unit as data: the invariants every compute plane's translation inherits (ECS today, EKS next), over every
// slot count and runtime.
import { WORKER_RUNTIMES } from '../../lib/core/runtime-kind';
import { INIT_USER, MAX_SLOTS, RIE_PORT, RUNTIME_API_PORT, SANDBOX_USER, TASK_ROOT } from '../../lib/infra/grid-unit';
import { portOf, rieAddresses, testUnit } from './template-helpers';

const SLOT_COUNTS = Array.from({ length: MAX_SLOTS }, (_, i) => i + 1);

describe.each(SLOT_COUNTS)('a unit of %i slot(s)', (slots) => {
  const u = testUnit(slots);
  const lambdas = u.containers.filter((c) => c.image === 'lambda');

  it('starts the init container, then one Lambda container per slot, then the agent', () => {
    expect(u.containers.map((c) => c.name)).toEqual([
      'fetch-worker',
      ...Array.from({ length: slots }, (_, i) => `lambda-${i}`),
      'agent',
    ]);
    for (const [i, c] of u.containers.entries()) {
      const earlier = new Set(u.containers.slice(0, i).map((d) => d.name));
      expect(c.dependsOn.every((d) => earlier.has(d.container))).toBe(true);
    }
  });

  it('has each lambda-rie bind the invoke and Runtime API ports it declares, none shared in the unit', () => {
    const listened = u.containers.flatMap((c) => c.listens);
    for (const [slot, c] of lambdas.entries()) {
      const { invoke, runtimeApi } = rieAddresses([...c.entryPoint!, ...c.command!]);
      expect([portOf(invoke), portOf(runtimeApi)]).toEqual([RIE_PORT + slot, RUNTIME_API_PORT + slot]);
      expect(c.listens).toEqual([portOf(invoke), portOf(runtimeApi)]);
      expect(invoke.startsWith('127.0.0.1:') && runtimeApi.startsWith('127.0.0.1:')).toBe(true);
    }
    expect(new Set(listened).size).toBe(listened.length);
  });

  it('points the agent at every Lambda container and waits for them to start', () => {
    const agent = u.containers.find((c) => c.name === 'agent')!;

    expect(agent.environment.HTCGRID_LAMBDA_ENDPOINTS!.split(',').map(portOf)).toEqual(
      lambdas.map((c) => c.listens[0]),
    );
    expect(agent.dependsOn).toEqual(lambdas.map((l) => ({ container: l.name, condition: 'START' })));
  });

  it('runs everything but the init container as the sandbox uid, every root file system read-only', () => {
    for (const c of u.containers) {
      expect(c.readOnlyRootFilesystem).toBe(true);
      expect(c.user).toBe(c.image === 'init' ? INIT_USER : SANDBOX_USER);
    }
  });

  it('mounts only declared volumes, gives each container its own /tmp, and the worker code read-only to Lambda', () => {
    const volumes = new Set(u.volumes);
    const tmps = u.containers.map((c) => c.mounts.find((m) => m.path === '/tmp')?.volume);
    for (const c of u.containers) expect(c.mounts.every((m) => volumes.has(m.volume))).toBe(true);
    expect(new Set(tmps).size).toBe(u.containers.length);
    expect(lambdas.every((l) => l.mounts.some((m) => m.path === TASK_ROOT && m.readOnly))).toBe(true);
    expect(
      u.containers.filter((c) => c.mounts.some((m) => m.path === TASK_ROOT && !m.readOnly)).map((c) => c.name),
    ).toEqual(['fetch-worker']);
  });
});

describe.each(WORKER_RUNTIMES.map((r) => r.name))('the %s runtime', (runtime) => {
  it('starts the runtime’s bootstrap behind lambda-rie with the handler as its command', () => {
    const [lambda] = testUnit(2, runtime).containers.filter((c) => c.image === 'lambda');
    const bootstrap = runtime.startsWith('provided') ? `${TASK_ROOT}/bootstrap` : '/var/runtime/bootstrap';

    expect(lambda!.entryPoint![0]).toBe('/usr/local/bin/aws-lambda-rie');
    expect(lambda!.entryPoint!.at(-1)).toBe(bootstrap);
    expect(lambda!.command).toEqual(['lambda_function.lambda_handler']);
    expect(lambda!.environment._HANDLER).toBe('lambda_function.lambda_handler');
  });
});
