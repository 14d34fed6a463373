// How far ahead an agent claims: fixed, or about a second of work per slot.
import { PrefetchPolicy } from '../../../lib/runtime/agent';

describe('PrefetchPolicy', () => {
  it('a fixed setting is used as it is', () => {
    const policy = new PrefetchPolicy({ setting: 3, slots: 2, max: 10 });

    policy.observe(5);

    expect(policy.current).toBe(3);
  });

  it('auto claims as many as there are slots until a task has run', () => {
    expect(new PrefetchPolicy({ setting: 'auto', slots: 2, max: 10 }).current).toBe(2);
  });

  it('auto fills a receive batch for tasks of milliseconds and claims one ahead for tasks of seconds', () => {
    const short = new PrefetchPolicy({ setting: 'auto', slots: 1, max: 10 });
    const long = new PrefetchPolicy({ setting: 'auto', slots: 4, max: 10 });

    for (let i = 0; i < 20; i++) {
      short.observe(12);
      long.observe(30_000);
    }

    expect(short.current).toBe(10);
    expect(long.current).toBe(1);
  });

  it('auto holds about a second of work per slot for tasks in between, and follows a change of task length', () => {
    const policy = new PrefetchPolicy({ setting: 'auto', slots: 2, max: 10 });
    for (let i = 0; i < 50; i++) policy.observe(400);
    const at400ms = policy.current;

    for (let i = 0; i < 50; i++) policy.observe(5_000);

    expect(at400ms).toBe(5);
    expect(policy.current).toBe(1);
  });
});
