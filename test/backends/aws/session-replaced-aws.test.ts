// A session handle's results on the AWS backends (DynamoDB Local) whose session is force-deleted and created again
// under the same id: the stream ends with an error naming both sessions, never yielding the new session's tasks as
// the old one's (the handle is the one of the local grid: see test/client/session-replaced-local.test.ts).
import { openAwsBackends, type AwsBackends } from '../../../lib/backends/aws';
import { GridClient } from '../../../lib/client';
import { compileConfig, SessionReplacedError } from '../../../lib/core';
import type { AwsGridResources } from '../../../lib/core/grid-resources';
import { createGridResources } from '../../support/emulators';
import { useEmulators } from '../../support/emulator-suite';
import { followAcrossReplacement } from '../../support/session-replaced';

const config = compileConfig({}, 'test');
const suite = useEmulators();

/** Backends on their own SDK clients, closed (clients destroyed) after the test. */
function open(resources: AwsGridResources): AwsBackends {
  const clients = suite.emulators.clients();
  const backends = openAwsBackends(resources, { clients });
  suite.closeAfterTest({
    close: async () => {
      await backends.close();
      for (const client of Object.values(clients)) client.destroy();
    },
  });
  return backends;
}

describe('SessionHandle.results on DynamoDB, its session deleted and created again', () => {
  it('ends with SessionReplacedError naming both creation times, never yielding the new task 2 as the old', async () => {
    const resources = await createGridResources(suite.emulators);
    const backends = open(resources);
    // No count check: the page that brings the new task 2 is what must be refused.
    const client = new GridClient({ config, ...backends, missingResultsCheckMs: Infinity });

    const { yielded, error, oldCreatedAt, newCreatedAt } = await followAcrossReplacement(
      client,
      open(resources).table,
      'reused-sdk',
    );

    // Without the check: reused-sdk_2 (the new session's) yielded, and the stream returned as finished.
    expect(yielded).toEqual(['reused-sdk_0', 'reused-sdk_1']);
    expect(error).toBeInstanceOf(SessionReplacedError);
    expect(error).toMatchObject({
      sessionId: 'reused-sdk',
      openedCreatedAt: oldCreatedAt,
      currentCreatedAt: newCreatedAt,
    });
  });
});
