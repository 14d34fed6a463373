// One AWS-emulator set-up for a test file: emulators started once, backends closed after each test, stack outputs.
import fs from 'node:fs';
import path from 'node:path';
import { openAwsBackends, type AwsBackends } from '../../lib/backends/aws';
import type { AwsGridResources } from '../../lib/core/grid-resources';
import { EMULATOR_REGION, startEmulators, type Emulators } from './emulators';
import { tempDir } from './local-grid';

export interface EmulatorSuite {
  /** The running emulators (valid inside tests and hooks). */
  readonly emulators: Emulators;
  /** The AWS backends on `resources` with their own SDK clients; closed, clients destroyed, after the test. */
  backendsFor(resources: AwsGridResources): AwsBackends;
  /** Closes `closable` after the test, before what was registered earlier (backends last). */
  closeAfterTest(closable: { close(): Promise<void> }): void;
}

/**
 * Starts DynamoDB Local, SQS and S3 emulators before the file's tests and stops them after. With `env`, the
 * process environment points the SDK at them meanwhile (for code that builds its own clients, like the CLI).
 */
export function useEmulators(options: { env?: boolean } = {}): EmulatorSuite {
  let emulators: Emulators | undefined;
  const savedEnv = { ...process.env };
  const opened: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    emulators = await startEmulators();
    if (options.env) Object.assign(process.env, emulators.env());
  }, 120_000);
  afterEach(async () => {
    for (const close of opened.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    if (options.env) process.env = savedEnv;
    await emulators?.stop();
  });
  const running = (): Emulators => {
    if (!emulators) throw new Error('the emulators are not running: use them inside a test or hook');
    return emulators;
  };
  return {
    get emulators() {
      return running();
    },
    backendsFor(resources) {
      const clients = running().clients();
      const backends = openAwsBackends(resources, { clients });
      opened.push(async () => {
        await backends.close();
        clients.dynamodb.destroy();
        clients.sqs.destroy();
        clients.s3.destroy();
      });
      return backends;
    },
    closeAfterTest(closable) {
      opened.push(() => closable.close());
    },
  };
}

/** A `cdk deploy --outputs-file` for a grid on `resources` (stack `HtcGrid`), with `extra` outputs; returns its path. */
export function writeOutputsFile(resources: AwsGridResources, extra: Record<string, string> = {}): string {
  const file = path.join(tempDir(), 'outputs.json');
  const outputs = {
    TableName: resources.tableName,
    QueueUrls: JSON.stringify(resources.queueUrls),
    DataBucket: resources.dataBucket,
    Region: EMULATOR_REGION,
    ...extra,
  };
  fs.writeFileSync(file, JSON.stringify({ HtcGrid: outputs }));
  return file;
}
