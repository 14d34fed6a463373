// The Lambda Runtime API server on its own: the HTTP contract a custom bootstrap relies on.
import { RuntimeApiServer, type RuntimeApiAnswer } from '../../../lib/runtime/local';

const API = '2018-06-01/runtime';

describe('the Runtime API server', () => {
  let server: RuntimeApiServer;
  let base: string;
  const polls: string[] = [];

  beforeEach(async () => {
    polls.length = 0;
    server = new RuntimeApiServer();
    base = `http://${await server.listen()}/${API}`;
    server.bind({ onFirstPoll: () => polls.push('first'), onInitError: () => undefined });
  });
  afterEach(async () => {
    await server.close();
  });

  it('long-polls next until an event is dispatched, then takes the response for that request id', async () => {
    const poll = fetch(`${base}/invocation/next`);
    const answer = server.dispatch({
      requestId: 'req-1',
      deadline: 1_700_000_000_000,
      functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:f',
      traceId: 'Root=1-0-0',
      clientContextJson: '{"custom":{"task_id":"t"}}',
      eventJson: '{"n":1}',
    });

    const next = await poll;
    const posted = await fetch(`${base}/invocation/req-1/response`, { method: 'POST', body: '{"r":2}' });

    expect(next.status).toBe(200);
    expect(next.headers.get('lambda-runtime-aws-request-id')).toBe('req-1');
    expect(next.headers.get('lambda-runtime-deadline-ms')).toBe('1700000000000');
    expect(next.headers.get('lambda-runtime-client-context')).toBe('{"custom":{"task_id":"t"}}');
    expect(await next.text()).toBe('{"n":1}');
    expect(posted.status).toBe(202);
    await expect(answer).resolves.toEqual<RuntimeApiAnswer>({ ok: true, body: '{"r":2}' });
    expect(polls).toEqual(['first']);
  });

  it('rejects a response for an unknown request id with 400, and an unknown path with 404', async () => {
    const unknownId = await fetch(`${base}/invocation/nope/response`, { method: 'POST', body: '{}' });
    const unknownPath = await fetch(`${base}/invocation/next/extra`);

    expect(unknownId.status).toBe(400);
    expect(await unknownId.json()).toMatchObject({ errorType: 'InvalidRequestID' });
    expect(unknownPath.status).toBe(404);
  });

  it('answers 413 to a response body over its limit and keeps the invocation open for a proper answer', async () => {
    const small = new RuntimeApiServer(1024);
    try {
      const smallBase = `http://${await small.listen()}/${API}`;
      small.bind({ onFirstPoll: () => undefined, onInitError: () => undefined });
      const poll = fetch(`${smallBase}/invocation/next`);
      let settled: RuntimeApiAnswer | undefined;
      const answer = small
        .dispatch({
          requestId: 'req-big',
          deadline: 1_700_000_000_000,
          functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:f',
          traceId: 'Root=1-0-0',
          clientContextJson: '{}',
          eventJson: '{}',
        })
        .then((a) => (settled = a));
      await (await poll).text();

      const tooLarge = await fetch(`${smallBase}/invocation/req-big/response`, {
        method: 'POST',
        body: JSON.stringify({ blob: 'x'.repeat(1024) }),
      });
      expect(tooLarge.status).toBe(413);
      expect(await tooLarge.json()).toMatchObject({ errorType: 'RequestEntityTooLarge' });
      expect(settled).toBeUndefined();

      const fits = await fetch(`${smallBase}/invocation/req-big/response`, { method: 'POST', body: '{"r":1}' });
      expect(fits.status).toBe(202);
      await expect(answer).resolves.toEqual<RuntimeApiAnswer>({ ok: true, body: '{"r":1}' });
    } finally {
      await small.close();
    }
  });
});
