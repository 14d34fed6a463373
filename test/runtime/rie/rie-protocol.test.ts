// Classifying lambda-rie responses: each shape the emulator produces maps to one invoke result.
import { classifyRieResponse, functionErrorBody, pythonJson } from '../../../lib/runtime/rie';

describe('classifying lambda-rie responses', () => {
  it('a 200 with any JSON result is a success, even an object with an errorType among other keys', () => {
    expect(classifyRieResponse(200, undefined, '{"a": 1}')).toEqual({ ok: true, resultJson: '{"a": 1}' });
    expect(classifyRieResponse(200, undefined, '{"errorType": "x", "errorMessage": "y", "value": 3}').ok).toBe(true);
    expect(classifyRieResponse(200, undefined, '"Task timed out after 3.00 seconds"').ok).toBe(true);
  });

  it("a 200 with Python's NaN, Infinity or a big integer is a success kept as written; a body that is not JSON a marshal error", () => {
    const python = '{"price": NaN, "vol": -Infinity, "id": 18446744073709551617}';
    expect(classifyRieResponse(200, undefined, python)).toEqual({ ok: true, resultJson: python });
    expect(classifyRieResponse(200, undefined, '')).toEqual({ ok: true, resultJson: 'null' });
    expect(classifyRieResponse(200, undefined, 'plain text')).toMatchObject({
      ok: false,
      reason: 'error',
      error: { type: 'Runtime.MarshalError', message: expect.stringMatching(/not JSON \(10 characters\)/) },
    });
  });

  it('a 200 error document is the handler error, an init error type a runtime crash', () => {
    const handlerError = classifyRieResponse(
      200,
      undefined,
      '{"errorMessage": "boom", "errorType": "KeyError", "requestId": "r", "stackTrace": ["  File \\"w.py\\"\\n"]}',
    );
    const importError = classifyRieResponse(
      200,
      undefined,
      '{"errorMessage": "Unable to import module \'x\'", "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}',
    );

    expect(handlerError).toEqual({
      ok: false,
      reason: 'error',
      error: { type: 'KeyError', message: 'boom', stack: ['  File "w.py"\n'] },
    });
    expect(importError).toMatchObject({
      ok: false,
      reason: 'runtime-crash',
      error: { type: 'Runtime.ImportModuleError' },
    });
  });

  it('the RIE timeout text, 400, 502 and 504 map to timeout, busy and runtime crashes', () => {
    expect(classifyRieResponse(200, undefined, 'Task timed out after 300.00 seconds')).toMatchObject({
      reason: 'timeout',
      error: { type: 'Sandbox.Timedout', message: 'Task timed out after 300.00 seconds' },
    });
    expect(classifyRieResponse(400, undefined, '')).toMatchObject({ reason: 'busy' });
    expect(
      classifyRieResponse(
        502,
        undefined,
        '{"errorMessage":"RequestId: r Error: Runtime exited","errorType":"Runtime.ExitError"}',
      ),
    ).toMatchObject({ reason: 'runtime-crash', error: { type: 'Runtime.ExitError' } });
    expect(classifyRieResponse(504, undefined, '')).toMatchObject({ reason: 'runtime-crash' });
  });

  it("honours Lambda's X-Amz-Function-Error header when a real Lambda endpoint sets it", () => {
    expect(classifyRieResponse(200, 'Unhandled', 'not json')).toMatchObject({
      ok: false,
      reason: 'error',
      error: { type: 'Unhandled', message: 'not json' },
    });
  });

  it('writes error documents with Python json.dumps separators and ASCII escapes', () => {
    expect(pythonJson({ a: [1, 'é'], b: { c: null } })).toBe('{"a": [1, "\\u00e9"], "b": {"c": null}}');
    expect(functionErrorBody({ type: 'E', message: 'm', stack: ['l1'] }, 'id')).toBe(
      '{"errorMessage": "m", "errorType": "E", "requestId": "id", "stackTrace": ["l1"]}',
    );
  });
});
