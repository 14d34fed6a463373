// Entry of the GridApi Lambda (bundled by the construct): the HTTP API on the grid's DynamoDB, SQS and S3.
import type { Writable } from 'node:stream';
import { createAwsClients, DynamoDbRequestLedger, openAwsBackends } from '../backends/aws';
import { GridClient } from '../client';
import { AGENT_HEARTBEAT_MS, compileConfig, GRID_ENV, resourcesFromEnv, retentionSecOf } from '../core';
import { createLogger } from '../logging';
import { registryAgents } from './agents';
import { ApiHandlers } from './api-handlers';
import {
  functionUrlHandler,
  type FunctionUrlEvent,
  type HttpResponseStreamFrom,
  type LambdaContextLike,
} from './lambda-adapter';

/** The Node.js Lambda runtime's global for response streaming (absent elsewhere, e.g. in tests). */
interface LambdaStreamingRuntime {
  streamifyResponse(
    handler: (event: FunctionUrlEvent, responseStream: Writable, context: LambdaContextLike) => Promise<void>,
  ): unknown;
  HttpResponseStream: { from: HttpResponseStreamFrom };
}

const runtime = (globalThis as { awslambda?: Partial<LambdaStreamingRuntime> }).awslambda;

/** Opened once per Lambda instance, on its first request. */
let handlers: Promise<ApiHandlers> | undefined;

/** The API on the grid named by the function's environment (set by the GridApi construct). */
export function openApiHandlers(env: NodeJS.ProcessEnv = process.env): ApiHandlers {
  const logger = createLogger({ name: 'htcgrid-api', level: env.HTCGRID_LOG_LEVEL ?? 'info', destination: 1 });
  const config = compileConfig(JSON.parse(env[GRID_ENV.config] ?? '{}') as unknown, GRID_ENV.config);
  const resources = resourcesFromEnv(env);
  const clients = createAwsClients({ region: resources.region });
  const backends = openAwsBackends(resources, { clients, logger, config, payloadPrefix: env.HTCGRID_DATA_PREFIX });
  return new ApiHandlers({
    config,
    // Results are read by polling the table: once a second keeps a stream's reads near one per page.
    client: new GridClient({ config, ...backends, logger, pollIntervalMs: 1_000 }),
    table: backends.table,
    store: backends.store,
    ledger: new DynamoDbRequestLedger({
      tableName: resources.tableName,
      client: clients.dynamodb,
      retentionSec: retentionSecOf(config),
    }),
    gridKind: 'aws',
    // Agents register in the task table: listing them is a Query and a BatchGet, shared by streams for 5 s.
    agents: registryAgents(backends.agents, { heartbeatEveryMs: AGENT_HEARTBEAT_MS.aws, cacheMs: 5_000 }),
    outputNote:
      "worker output is not captured in AWS: lambda-rie writes it to the Lambda containers' log streams (the compute plane's log group, streams lambda-<slot>/...)",
    pollIntervalMs: 1_000,
    logger,
  });
}

export const handler =
  typeof runtime?.streamifyResponse === 'function' && runtime.HttpResponseStream
    ? runtime.streamifyResponse(
        functionUrlHandler(() => (handlers ??= Promise.resolve(openApiHandlers())), runtime.HttpResponseStream.from),
      )
    : undefined;
