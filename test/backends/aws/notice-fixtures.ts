// Task items for the completion-notice tests.

/** A terminal task item as a completion write returns it (`ALL_NEW`), with an inline result of `resultBytes`. */
export function terminalTaskItem(
  taskId: string,
  resultBytes = 2,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    task_id: taskId,
    session_id: 's',
    session_part: 's#0',
    session_sk: `T#000001700000000#000000001#s#${taskId}`,
    idx: Number(taskId.split('_')[1] ?? 0),
    state: 'succeeded',
    priority: 0,
    attempt: 1,
    failures: 0,
    max_attempts: 3,
    timeout_ms: 60_000,
    payload: { inline: '{"n":1}' },
    result: { inline: `"${'x'.repeat(Math.max(0, resultBytes - 2))}"` },
    submitted_at: 1_700_000_000_000,
    started_at: 1_700_000_000_010,
    finished_at: 1_700_000_000_020,
    history: {
      '1': { owner: 'agent-1', startedAt: 1_700_000_000_010, finishedAt: 1_700_000_000_020, outcome: 'succeeded' },
    },
    ttl: 1_700_604_800,
    ...overrides,
  };
}
