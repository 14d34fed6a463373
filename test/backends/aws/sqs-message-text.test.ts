// SQS refuses a whole message for one character outside its set: the grid's bodies (task messages, completion
// notices) write such characters as JSON escapes, and read back the text they were given.
import { decodeMessage, encodeMessage, SQS_MESSAGE_TEXT, sqsJsonText } from '../../../lib/backends/aws';

/** Every character SQS refuses, one of each kind, and neighbours it takes. */
const REFUSED = ['\u0000', '\u0008', '\u000b', '\u000c', '\u001f', '\ufffe', '\uffff', '\ud800', '\udbff', '\udc00'];
const TAKEN = ['\t', '\n', '\r', ' ', '\u007f', '\u2028', '\ud7ff', '\ue000', '\ufffd', '\ud83d\ude00', '\udbff\udfff'];

describe('SQS message text', () => {
  it("matches SQS's set: refuses each character outside it, takes those inside", () => {
    for (const c of REFUSED) expect([c, SQS_MESSAGE_TEXT.test(`a${c}b`)]).toEqual([c, false]);
    for (const c of TAKEN) expect([c, SQS_MESSAGE_TEXT.test(`a${c}b`)]).toEqual([c, true]);
  });

  it('writes what SQS refuses in JSON text as escapes, leaving the rest, and reads back as the same value', () => {
    const value = { text: [...REFUSED, ...TAKEN].join('|'), list: REFUSED, lone: '\udc00\ud800' };
    const json = JSON.stringify(value, null, '\t');

    const text = sqsJsonText(json);

    expect(SQS_MESSAGE_TEXT.test(json)).toBe(false);
    expect(SQS_MESSAGE_TEXT.test(text)).toBe(true);
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toContain('\\uffff'); // U+FFFF as its escape
    expect(text).toContain('\ud83d\ude00'); // a pair stays as it is
  });

  it("sends a task of a session named with any text in a body SQS accepts, read back as the task's message", () => {
    const sessionId = `risk\uffff\ufffe\ud800-run`;
    const message = { taskId: `${sessionId}_7`, sessionId, attempt: 2, priority: 1 };

    const body = encodeMessage(message);

    expect(SQS_MESSAGE_TEXT.test(body)).toBe(true);
    expect(decodeMessage(body)).toEqual(message);
  });

  it("a reap's message is read back with its leaseExpiredBefore; another value there is malformed", () => {
    const message = { taskId: 's_1', sessionId: 's', attempt: 1, priority: 0, leaseExpiredBefore: 1_700_000_000_000 };

    expect(decodeMessage(encodeMessage(message))).toEqual(message);
    expect(() => decodeMessage(JSON.stringify({ ...message, leaseExpiredBefore: 'soon' }))).toThrow(
      /not a grid task message/,
    );
  });
});
