// The HTTP API in a Lambda behind a function URL (AWS_IAM auth, response streaming): events in, streamed answers out.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { ApiHandlers, ApiRequest } from './api-handlers';

/** The parts of a function URL event (payload format 2.0) the API reads. */
export interface FunctionUrlEvent {
  readonly rawPath: string;
  readonly rawQueryString?: string;
  readonly headers?: Readonly<Record<string, string | undefined>>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext: {
    readonly http: { readonly method: string; readonly sourceIp?: string };
    /** Present with AWS_IAM auth: who signed the request. */
    readonly authorizer?: { readonly iam?: { readonly userArn?: string; readonly callerId?: string } };
  };
}

export interface LambdaContextLike {
  getRemainingTimeInMillis(): number;
}

/** Status and headers of a streamed answer: the Lambda runtime's `awslambda.HttpResponseStream.from` writes them. */
export type HttpResponseStreamFrom = (
  stream: Writable,
  metadata: { statusCode: number; headers: Record<string, string> },
) => Writable;

/**
 * A streaming handler (`awslambda.streamifyResponse(handler)`) serving `api`: IAM has authenticated the caller, whose
 * ARN is its rate-limit key; a results stream ends before the function's deadline with a cursor to resume from.
 */
export function functionUrlHandler(
  api: ApiHandlers | (() => Promise<ApiHandlers>),
  from: HttpResponseStreamFrom,
): (event: FunctionUrlEvent, responseStream: Writable, context: LambdaContextLike) => Promise<void> {
  return async (event, responseStream, context) => {
    const handlers = typeof api === 'function' ? await api() : api;
    const aborted = new AbortController();
    responseStream.once('close', () => aborted.abort());
    const response = await handlers.handle(toApiRequest(event, context, aborted.signal));
    const stream = from(responseStream, { statusCode: response.status, headers: { ...response.headers } });
    if (typeof response.body === 'string') {
      stream.end(response.body);
    } else {
      for await (const chunk of response.body) {
        if (!stream.write(chunk)) await once(stream, 'drain');
      }
      stream.end();
    }
    await once(stream, 'finish');
  };
}

export function toApiRequest(event: FunctionUrlEvent, context: LambdaContextLike, signal?: AbortSignal): ApiRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) headers[name.toLowerCase()] = value;
  const body = event.body
    ? event.isBase64Encoded
      ? Buffer.from(event.body, 'base64').toString('utf8')
      : event.body
    : '';
  const iam = event.requestContext.authorizer?.iam;
  return {
    method: event.requestContext.http.method.toUpperCase(),
    path: event.rawPath,
    query: new URLSearchParams(event.rawQueryString ?? ''),
    headers,
    body,
    caller: iam?.userArn ?? iam?.callerId ?? event.requestContext.http.sourceIp ?? 'unknown',
    signal,
    deadline: Date.now() + context.getRemainingTimeInMillis(),
  };
}
