// Completion notice bodies: outcomes go along where they fit in one 64 KiB notice, every task is named once, and a
// client reads both shapes (with and without outcomes) and what is malformed in a notice as a name only.
import {
  MAX_CARRIED_PER_SEND,
  MAX_NOTICE_BYTES,
  noticeBodies,
  noticeOutcomeOf,
  parseNotice,
  SQS_MESSAGE_TEXT,
  type FinishedTask,
} from '../../../lib/backends/aws';
import { terminalTaskItem as item } from './notice-fixtures';

function finished(taskId: string, resultBytes?: number): FinishedTask {
  return { taskId, outcome: noticeOutcomeOf(item(taskId, resultBytes)) };
}

describe('completion notice bodies', () => {
  it('carry the outcome of each task, without its lease, TTL or index partition, and read back as sent', () => {
    const [body, ...more] = noticeBodies('s', [finished('s_0'), finished('s_1')]);

    expect(more).toEqual([]);
    const notice = parseNotice(body);
    expect(notice.problems).toEqual([]);
    expect(notice.sessionId).toBe('s');
    expect(notice.tasks.map((t) => t.taskId)).toEqual(['s_0', 's_1']);
    const { ttl: _ttl, session_part: _part, ...carried } = item('s_0');
    expect(notice.tasks[0]!.outcome).toEqual(carried);
  });

  it('carry outcomes in one notice of at most 64 KiB, naming the tasks whose outcomes do not fit in it', () => {
    const tasks = Array.from({ length: 40 }, (_, i) => finished(`s_${i}`, 10_000));

    const bodies = noticeBodies('s', tasks);

    expect(bodies).toHaveLength(1);
    expect(Buffer.byteLength(bodies[0]!)).toBeLessThanOrEqual(MAX_NOTICE_BYTES);
    const read = parseNotice(bodies[0]);
    expect(read.tasks.map((t) => t.taskId)).toEqual(tasks.map((t) => t.taskId));
    const carried = read.tasks.filter((t) => t.outcome !== undefined).length;
    expect(carried).toBeGreaterThanOrEqual(5);
    expect(carried).toBeLessThan(7);
  });

  it('split the names of thousands of tasks into notices of at most 64 KiB, each task named once and in order', () => {
    const session = 'a'.repeat(36);
    const tasks = Array.from({ length: 3000 }, (_, i) => ({ taskId: `${session}_${i}` }));

    const bodies = noticeBodies(session, tasks);

    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_NOTICE_BYTES);
    expect(bodies.flatMap((b) => parseNotice(b).tasks)).toEqual(tasks);
  });

  it('name a task whose outcome alone would not fit in a notice without it (its client reads it by key)', () => {
    const bodies = noticeBodies('s', [finished('s_0'), finished('s_1', 100_000), finished('s_2')]);

    expect(bodies).toHaveLength(1);
    expect(Buffer.byteLength(bodies[0]!)).toBeLessThan(1000);
    const tasks = parseNotice(bodies[0]).tasks;
    expect(tasks.map((t) => [t.taskId, t.outcome !== undefined])).toEqual([
      ['s_0', true],
      ['s_1', false],
      ['s_2', true],
    ]);
  });

  it(`only name the tasks of a send of more than ${MAX_CARRIED_PER_SEND} tasks (their client reads the index then)`, () => {
    const tasks = Array.from({ length: MAX_CARRIED_PER_SEND + 1 }, (_, i) => finished(`s_${i}`));

    const read = noticeBodies('s', tasks).map(parseNotice);

    expect(read.flatMap((n) => n.tasks)).toEqual(tasks.map((t) => ({ taskId: t.taskId })));
  });

  it('carry any text of an outcome in characters SQS accepts, reading back as it was (U+FFFE, U+FFFF escaped)', () => {
    // Outside SQS's set: U+FFFE, U+FFFF, surrogates not in a pair, controls; inside it: a pair, U+FFFD, U+007F, U+2028.
    const odd = 'a\uffff\ufffe\ud800x\udfff\u0000\u0001\u001f\t\n\r\ud83d\ude00\ufffd\u007f\u2028\ue000\ud7ff';
    const session = `s${odd}`;
    const taskId = `${session}_0`;
    const error = { type: `E${odd}`, message: odd, stack: [odd] };
    const outcome = noticeOutcomeOf(
      item(taskId, 2, {
        session_id: session,
        session_sk: `T#000001700000000#000000001#f#${taskId}`,
        state: 'failed',
        failure_reason: 'error',
        error,
        payload: { inline: JSON.stringify(odd) },
        result: { inline: `"${odd}"` },
        history: { '1': { owner: odd, startedAt: 1, finishedAt: 2, outcome: 'error', error } },
      }),
    );
    // 20,000 U+FFFF: 60,000 bytes as they are, 120,000 escaped: past a notice, so named only.
    const wide = noticeOutcomeOf(
      item(`${session}_1`, 2, { session_id: session, result: { inline: `"${'\uffff'.repeat(20_000)}"` } }),
    );
    const tasks = [{ taskId, outcome }, { taskId: `${session}_1`, outcome: wide }, { taskId: `${session}_2` }];

    const bodies = noticeBodies(session, tasks);

    for (const body of bodies) {
      expect(SQS_MESSAGE_TEXT.test(body)).toBe(true);
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_NOTICE_BYTES);
    }
    const read = bodies.map(parseNotice);
    expect(read.flatMap((n) => n.problems)).toEqual([]);
    expect(read.map((n) => n.sessionId)).toEqual(bodies.map(() => session));
    expect(read.flatMap((n) => n.tasks)).toEqual([tasks[0], { taskId: `${session}_1` }, tasks[2]]);
  });

  it('read the shape of agents that predate outcomes: tasks named, no outcome', () => {
    expect(parseNotice(JSON.stringify({ s: 's', t: ['s_0', 's_1'] }))).toEqual({
      sessionId: 's',
      tasks: [{ taskId: 's_0' }, { taskId: 's_1' }],
      problems: [],
    });
  });

  it('drop a malformed outcome, or one of another session or of a task not named, keeping the task named', () => {
    const body = JSON.stringify({
      s: 's',
      t: ['s_0', 's_1', 's_2', 's_3', 7],
      o: [
        noticeOutcomeOf(item('s_0', 2, { state: 'running' })),
        noticeOutcomeOf(item('s_1', 2, { session_id: 'other' })),
        noticeOutcomeOf(item('s_2', 2, { attempt: 'one' })),
        noticeOutcomeOf(item('s_9')),
        noticeOutcomeOf(item('s_3', 2, { state: 'failed', error: { type: 'ValueError', message: 'bad', stack: [] } })),
      ],
    });

    const notice = parseNotice(body);

    expect(notice.tasks.map((t) => [t.taskId, t.outcome?.state])).toEqual([
      ['s_0', undefined],
      ['s_1', undefined],
      ['s_2', undefined],
      ['s_3', 'failed'],
    ]);
    expect(notice.problems).toHaveLength(5);
    expect(notice.problems.join('\n')).toMatch(/another session/);
    expect(notice.problems.join('\n')).toMatch(/does not name/);
  });

  it('read a body that is not a notice as naming nothing, never throwing', () => {
    for (const body of [undefined, '', 'not json', 'null', '[1]', '{"s":1,"t":[]}', '{"s":"s","t":"s_0"}']) {
      const notice = parseNotice(body);
      expect(notice.tasks).toEqual([]);
      expect(notice.problems).not.toEqual([]);
    }
    expect(parseNotice('{"s":"s","t":["s_0"],"o":{}}').tasks).toEqual([{ taskId: 's_0' }]);
  });

  it('name what a task id that is not a string is, even one nested past what JSON.stringify can write', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const body = `{"s":"s","t":["s_0",${deep},7,"",null,{"a":1}]}`;

    const notice = parseNotice(body);

    expect(notice.tasks).toEqual([{ taskId: 's_0' }]);
    expect(notice.problems).toEqual(
      ['a list', 'a number', 'empty', 'null', 'an object'].map(
        (what) => `a task id is not a non-empty string but ${what}`,
      ),
    );
  });
});
