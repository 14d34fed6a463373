// Pure parts of the local runtime: output attribution, frame decoding, and Lambda's failure wording.
import { FrameKind, ResponseDecoder, type ResponseFrame } from '../../../lib/runtime/local/frame-codec';
import { crashResult, parseErrorDocument, timeoutResult } from '../../../lib/runtime/invoke-results';
import { restartDelayMs } from '../../../lib/runtime/local';
import { OutputCapture } from '../../../lib/runtime/local/output-capture';
import { collectOutput } from './helpers';

describe('output capture', () => {
  it('gives output that arrives after a task ended to that task, not the next one', () => {
    const out = collectOutput();
    const capture = new OutputCapture(out.listener, 1024);

    capture.begin('t1');
    capture.data('stdout', Buffer.from('one-'));
    capture.end(9, 0); // t1 wrote 9 bytes; 5 are still in flight
    capture.begin('t2');
    capture.data('stdout', Buffer.from('tail\ntwo\n'));
    capture.end(4, 0);

    expect(out.text('t1')).toBe('one-tail\n');
    expect(out.text('t2')).toBe('two\n');
  });

  it('holds output while tasks are queued, until the answers tell whose bytes they are', () => {
    const out = collectOutput();
    const capture = new OutputCapture(out.listener, 1024);

    capture.begin('t1');
    capture.hold(true); // t2 and t3 were written behind t1
    // All three ran before any answer was read: their output arrives first, in one piece.
    capture.data('stdout', Buffer.from('one\ntwo\nthree\n'));
    capture.end(4, 0);
    capture.begin('t2');
    capture.end(4, 0);
    capture.begin('t3');
    capture.hold(false);
    capture.end(6, 0);

    expect(out.text('t1')).toBe('one\n');
    expect(out.text('t2')).toBe('two\n');
    expect(out.text('t3')).toBe('three\n');
  });

  it('re-synchronises when a task wrote more than it counted (native writes)', () => {
    const out = collectOutput();
    const capture = new OutputCapture(out.listener, 1024);

    capture.begin('t1');
    capture.data('stdout', Buffer.from('counted+native\n'));
    capture.end(8, 0);
    capture.begin('t2');
    capture.data('stdout', Buffer.from('second\n'));
    capture.end(7, 0);

    expect(out.text('t1')).toBe('counted+native\n');
    expect(out.text('t2')).toBe('second\n');
  });

  it('keeps at most the cap per task and says it truncated', () => {
    const out = collectOutput();
    const capture = new OutputCapture(out.listener, 10);

    capture.begin('t1');
    capture.data('stderr', Buffer.from('0123456789abcdef'));
    capture.data('stderr', Buffer.from('more'));
    capture.end(20, 0);

    expect(out.text('t1')).toBe('0123456789\n[htcgrid: output of this task truncated after 10 bytes]\n');
  });
});

describe('response frames', () => {
  function frame(kind: number, body: string): Buffer {
    const b = Buffer.from(body);
    const head = Buffer.alloc(13);
    head.writeUInt32BE(b.length + 9, 0);
    head.writeUInt8(kind, 4);
    head.writeUInt32BE(3, 5);
    head.writeUInt32BE(4, 9);
    return Buffer.concat([head, b]);
  }

  it('decodes frames whatever the chunking, bodies untouched', () => {
    const frames: ResponseFrame[] = [];
    const decoder = new ResponseDecoder((f) => frames.push(f));
    const bytes = Buffer.concat([frame(FrameKind.result, '{"a": 1}'), frame(FrameKind.error, '{"errorType":"X"}')]);

    for (let i = 0; i < bytes.length; i += 3) decoder.push(bytes.subarray(i, i + 3));

    expect(frames).toEqual([
      { kind: FrameKind.result, stdoutBytes: 3, stderrBytes: 4, body: '{"a": 1}' },
      { kind: FrameKind.error, stdoutBytes: 3, stderrBytes: 4, body: '{"errorType":"X"}' },
    ]);
  });

  it('rejects a corrupt frame', () => {
    const decoder = new ResponseDecoder(() => undefined);

    expect(() => decoder.push(frame(9, 'x'))).toThrow(/corrupt runtime frame/);
  });
});

describe('failure wording', () => {
  it('words a timeout as lambda-rie does, rounding the span up to 10 ms', () => {
    expect(timeoutResult(2_995)).toMatchObject({
      reason: 'timeout',
      error: { message: 'Task timed out after 3.00 seconds' },
    });
  });

  it('names the exit status or the signal of a crashed runtime', () => {
    expect(crashResult(3, null)).toMatchObject({ error: { message: 'Runtime exited with error: exit status 3' } });
    expect(crashResult(null, 'SIGSEGV')).toMatchObject({
      error: { message: 'Runtime exited with error: signal: segmentation fault (SIGSEGV)' },
    });
  });

  it("reads Node's `trace` as the stack, and keeps a non-JSON error body as the message", () => {
    expect(parseErrorDocument('{"errorType":"E","errorMessage":"m","trace":["E: m","  at x"]}')).toEqual({
      type: 'E',
      message: 'm',
      stack: ['E: m', '  at x'],
    });
    expect(parseErrorDocument('plain text', 'Custom.T')).toEqual({
      type: 'Custom.T',
      message: 'plain text',
      stack: [],
    });
  });

  it('restarts at once the first time, then backs off up to 5 s', () => {
    expect([0, 1, 2, 3, 4, 20].map(restartDelayMs)).toEqual([0, 0, 100, 200, 400, 5_000]);
  });
});
