// The local Node.js runtime with real node processes: context, async and callback handlers, ESM, errors.
import path from 'node:path';
import { resolveRuntime } from '../../../lib/core/runtime-kind';
import { expectLambdaStreamAndClock, invokersOf, probed, timedOutThenNext } from '../../support/local-runtimes';
import {
  collectOutput,
  expectChildKilledOnTimeout,
  expectInitError,
  failure,
  FIXTURES,
  initError,
  invocation,
  waitFor,
} from './helpers';

const TASK_ROOT = path.join(FIXTURES, 'node');
const node = invokersOf({ taskRoot: TASK_ROOT, runtime: resolveRuntime('nodejs22.x') });

describe('the local Node.js runtime', () => {
  it('gives an async handler the camelCase Lambda context with the task identity in clientContext.custom', async () => {
    const invoker = node('handlers.probe', { functionName: 'node-fn', env: { AWS_REGION: 'eu-central-1' } });
    await invoker.start();
    const inv = invocation({}, 5_000, { taskId: 's_7', sessionId: 's', attempt: 3 });

    const ctx = await probed(invoker, inv);

    expect(ctx).toMatchObject({
      awsRequestId: inv.requestId,
      functionName: 'node-fn',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:eu-central-1:000000000000:function:node-fn',
      memoryLimitInMB: '3008',
      logGroupName: '/aws/lambda/node-fn',
      hasIdentity: true,
      clientContext: { custom: { session_id: 's', task_id: 's_7', attempt: 3 } },
      callbackWaitsForEmptyEventLoop: true,
      cwd: TASK_ROOT,
      env: { LAMBDA_TASK_ROOT: TASK_ROOT, AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x' },
    });
    expectLambdaStreamAndClock(ctx.logStreamName, ctx.remaining, 5_000);
  });

  it('passes a task id with non-ASCII characters through unchanged', async () => {
    const invoker = node('handlers.probe');
    const inv = invocation({}, 5_000, { sessionId: 'sé', taskId: 'sé_1', attempt: 2 });

    const ctx = await probed(invoker, inv);

    expect(ctx.clientContext).toEqual({
      custom: { session_id: 'sé', task_id: 'sé_1', attempt: 2 },
    });
  });

  it('runs a callback-style handler', async () => {
    const invoker = node('handlers.callback');

    const result = await invoker.invoke(invocation({ n: 21 }));

    expect(result).toEqual({ ok: true, resultJson: '{"viaCallback":42}' });
  });

  it('reports an error passed to the callback with its type', async () => {
    const invoker = node('handlers.callbackError');

    const result = failure(await invoker.invoke(invocation({})));

    expect(result.reason).toBe('error');
    expect(result.error.type).toBe('TypeError');
    expect(result.error.message).toBe('wrong type of thing');
  });

  it('reports a rejected promise as an error with the stack as lines', async () => {
    const invoker = node('handlers.fail');

    const result = failure(await invoker.invoke(invocation({})));

    expect(result.reason).toBe('error');
    expect(result.error.type).toBe('RangeError');
    expect(result.error.message).toBe('out of range');
    expect(result.error.stack[0]).toBe('RangeError: out of range');
    expect(result.error.stack.some((line) => line.includes('handlers.js'))).toBe(true);
  });

  it('reports a circular result as Runtime.MarshalError', async () => {
    const invoker = node('handlers.circular');

    const result = failure(await invoker.invoke(invocation({})));

    expect(result.error.type).toBe('Runtime.MarshalError');
    expect(result.error.message).toMatch(/circular/i);
  });

  it('loads an ES module handler (.mjs) and a nested handler path', async () => {
    const esm = node('esm.handler');
    const nested = node('handlers.nested.handler');

    const [a, b] = await Promise.all([esm.invoke(invocation({ q: 1 })), nested.invoke(invocation({}))]);

    expect(a).toEqual({ ok: true, resultJson: '{"esm":true,"event":{"q":1}}' });
    expect(b).toEqual({ ok: true, resultJson: '"nested ok"' });
  });

  it('attributes console output to the task, in the Lambda log format', async () => {
    const output = collectOutput();
    const invoker = node('handlers.say', { onOutput: output.listener });
    const inv = invocation({ name: 'zed' });

    await invoker.invoke(inv);

    await waitFor(() => output.text(inv.taskId).length > 0);
    expect(output.text(inv.taskId)).toMatch(new RegExp(`^\\S+Z\\t${inv.requestId}\\tINFO\\thello from zed\\n$`));
  });

  it('kills a handler that runs past its deadline and recovers', async () => {
    const { timedOut, next } = await timedOutThenNext(node('handlers.sleep'), { ms: 20_000 }, 250, { ms: 1 });

    expect(timedOut.reason).toBe('timeout');
    expect(timedOut.error.message).toBe('Task timed out after 0.25 seconds');
    expect(next).toEqual({ ok: true, resultJson: '"late"' });
  });

  it('fails the task on an uncaught exception, then runs the next task on a fresh runtime', async () => {
    const invoker = node('handlers.uncaught');

    const failed = failure(await invoker.invoke(invocation({ throwLater: true })));
    const next = failure(await invoker.invoke(invocation({}, 500)));

    expect(failed.reason).toBe('error');
    expect(failed.error.message).toBe('thrown from a timer');
    // The next task reached a live runtime (it ran until its deadline), not the dying one.
    expect(next.reason).toBe('timeout');
  });

  it('kills the processes a handler started when its task times out', async () => {
    await expectChildKilledOnTimeout(node('handlers.spawnAndSleep'), (pidFile) => ({ pidFile }));
  });

  it.each([
    ['a missing module', 'nope.handler', 'Runtime.ImportModuleError', /Cannot find module 'nope'/],
    [
      'a missing function',
      'handlers.absent',
      'Runtime.HandlerNotFound',
      /handlers.absent is undefined or not exported/,
    ],
  ])('fails start() with WorkerInitError on %s', async (_what, handler, type, message) => {
    await expectInitError(node(handler), type, message, [TASK_ROOT]);
  });

  it('names a missing dependency of the handler module and how to ship it', async () => {
    const error = await initError(node('needs_dep.handler'));

    expect(error.message).toMatch(/Cannot find module 'htcgrid-missing-dependency'/);
    expect(error.hint).toMatch(
      /^the handler module was found, but it imports 'htcgrid-missing-dependency', which the worker does not hold: list it in package\.json dependencies/,
    );
  });
});
