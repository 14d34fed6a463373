// The local Node.js Lambda runtime: one long-lived process per slot, fed invocations over pipe fds 3 (in) and 4 (out).
//
// Plain JS, no dependencies. Same frames as bootstrap.py:
//   request:  u32 header length | u32 body length | header | event JSON
//             header: "timeout ms\tattempt\tarn\trequest id\tsession id\ttask id", or JSON {id, timeout, arn, cc, trace};
//             the timeout counts from when the request starts (the invoker never writes ahead to this runtime)
//   response: u32 length of the rest | u8 kind | u32 stdout bytes | u32 stderr bytes | body
//   kind 0 = result JSON, 1 = error JSON, 2 = ready (body: PROTOCOL_VERSION), 3 = init error JSON,
//   4 = error JSON and the process exits.
// Handlers are resolved like the AWS Node.js runtime interface client: `path/file.function` (nested `a.b` allowed),
// the file being `.js`, `.mjs` or `.cjs`; async handlers and callback handlers `(event, context, callback)` work.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');
const { pathToFileURL } = require('node:url');

const KIND_RESULT = 0;
const KIND_ERROR = 1;
const KIND_READY = 2;
const KIND_INIT_ERROR = 3;
const KIND_FATAL_ERROR = 4;
// Must match PROTOCOL_VERSION in lib/runtime/local/frame-codec.ts.
const PROTOCOL_VERSION = 'htcgrid-runtime/3';
const U32 = 0xffffffff;

const counts = { out: 0, err: 0 };
let currentRequestId;

// --- output: count bytes written through process.stdout/stderr, and log like the Lambda console patch -----------

function countWrites(stream, key) {
  const write = stream.write.bind(stream);
  stream.write = function countedWrite(chunk, encoding, cb) {
    counts[key] +=
      typeof chunk === 'string'
        ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8')
        : chunk.length;
    return write(chunk, encoding, cb);
  };
}

function patchConsole() {
  const levels = { log: 'INFO', info: 'INFO', warn: 'WARN', error: 'ERROR', debug: 'DEBUG', trace: 'TRACE' };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => {
      const message = util.format(...args);
      const line = `${new Date().toISOString()}\t${currentRequestId ?? 'undefined'}\t${level}\t${message}\n`;
      process.stdout.write(line);
    };
  }
}

// --- transport ----------------------------------------------------------------------------------------------------

const responses = new net.Socket({ fd: 4, readable: false, writable: true });

function send(kind, body) {
  const head = Buffer.allocUnsafe(13);
  head.writeUInt32BE(body.length + 9, 0);
  head.writeUInt8(kind, 4);
  head.writeUInt32BE(Math.min(counts.out, U32), 5);
  head.writeUInt32BE(Math.min(counts.err, U32), 9);
  counts.out = 0;
  counts.err = 0;
  responses.write(body.length > 0 ? Buffer.concat([head, body]) : head);
}

function formatError(error) {
  try {
    if (error instanceof Error) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      trace: [],
    };
  }
}

// --- handler loading ------------------------------------------------------------------------------------------------

class LambdaRuntimeError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

function isModuleNotFound(error, file) {
  return (
    error && error.code === 'MODULE_NOT_FOUND' && typeof error.message === 'string' && error.message.includes(file)
  );
}

async function loadModule(taskRoot, modulePath) {
  const base = path.resolve(taskRoot, modulePath);
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = base + ext;
    if (!fs.existsSync(file)) continue;
    if (ext === '.mjs') return import(pathToFileURL(file).href);
    try {
      return require(file);
    } catch (error) {
      if (error && error.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
      throw error;
    }
  }
  // Not a file of the task root: a package (node_modules), as the Lambda runtime allows.
  try {
    return require(require.resolve(modulePath, { paths: [taskRoot] }));
  } catch (error) {
    if (isModuleNotFound(error, modulePath)) {
      throw new LambdaRuntimeError('Runtime.ImportModuleError', `Error: Cannot find module '${modulePath}'`);
    }
    throw error;
  }
}

async function loadHandler(taskRoot, handler) {
  const match = /^([^.]*)\.(.*)$/.exec(handler);
  if (!match || !match[1] || !match[2] || match[2].includes('..')) {
    throw new LambdaRuntimeError('Runtime.MalformedHandlerName', `Bad handler ${handler}`);
  }
  const [, modulePath, handlerPath] = match;
  let mod;
  try {
    mod = await loadModule(taskRoot, modulePath);
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new LambdaRuntimeError('Runtime.UserCodeSyntaxError', `${error.name}: ${error.message}`);
    }
    throw error;
  }
  let fn = mod;
  for (const part of handlerPath.split('.')) fn = fn == null ? undefined : fn[part];
  if (typeof fn !== 'function') {
    throw new LambdaRuntimeError(
      'Runtime.HandlerNotFound',
      `${modulePath}.${handlerPath} is undefined or not exported`,
    );
  }
  return fn;
}

// --- invocations ------------------------------------------------------------------------------------------------------

let inFlight = false;
/** Set after an uncaught error: the process is about to exit and must answer nothing more. */
let dying = false;

function makeContext(header, settle) {
  const deadline = header.deadline;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: header.cc,
    identity: undefined,
    invokedFunctionArn: header.arn,
    awsRequestId: header.id,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    succeed: (result) => settle(undefined, result),
    fail: (error) => settle(error ?? new Error('handled')),
    done: (error, result) => settle(error, result),
  };
}

function runInvocation(handler, header, body) {
  currentRequestId = header.id;
  inFlight = true;
  if (header.trace !== undefined) process.env._X_AMZN_TRACE_ID = header.trace;
  let settled = false;
  const answer = (kind, payload) => {
    if (settled || dying) return;
    settled = true;
    inFlight = false;
    currentRequestId = undefined;
    send(kind, payload);
  };
  const fail = (error) => answer(KIND_ERROR, Buffer.from(JSON.stringify(formatError(error))));
  const succeed = (result) => {
    let json;
    try {
      json = JSON.stringify(result === undefined ? null : result);
    } catch (marshal) {
      const message = `Unable to stringify response body as json: ${marshal && marshal.message}`;
      answer(
        KIND_ERROR,
        Buffer.from(JSON.stringify({ errorType: 'Runtime.MarshalError', errorMessage: message, trace: [] })),
      );
      return;
    }
    answer(KIND_RESULT, Buffer.from(json === undefined ? 'null' : json));
  };
  // The callback's (error, result): a null or undefined error means success.
  const settle = (error, result) => (error === undefined || error === null ? succeed(result) : fail(error));
  let event;
  try {
    event = JSON.parse(body.toString('utf8'));
  } catch (error) {
    fail(new LambdaRuntimeError('Runtime.UnmarshalError', `Unable to unmarshal input: ${error.message}`));
    return;
  }
  const context = makeContext(header, settle);
  try {
    const returned = handler(event, context, settle);
    if (returned && typeof returned.then === 'function') {
      returned.then(succeed, fail);
    } else if (handler.length < 3) {
      // A synchronous handler without a callback: Lambda answers null once the event loop is empty.
      succeed(null);
    }
  } catch (error) {
    fail(error);
  }
}

/** The request header: tab-separated `timeoutMs attempt arn requestId sessionId taskId`, or JSON. */
function parseHeader(text) {
  if (text.startsWith('{')) {
    const header = JSON.parse(text);
    return { ...header, deadline: Date.now() + header.timeout };
  }
  const parts = text.split('\t');
  const [timeout, attempt, arn, id, sessionId] = parts;
  const taskId = parts.slice(5).join('\t');
  return {
    id,
    deadline: Date.now() + Number(timeout),
    arn,
    cc: { custom: { session_id: sessionId, task_id: taskId, attempt: Number(attempt) } },
  };
}

function serve(handler) {
  const requests = new net.Socket({ fd: 3, readable: true, writable: false });
  let buffered = Buffer.alloc(0);
  requests.on('data', (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 8) {
      const headerLength = buffered.readUInt32BE(0);
      const bodyLength = buffered.readUInt32BE(4);
      const end = 8 + headerLength + bodyLength;
      if (buffered.length < end) break;
      const header = parseHeader(buffered.toString('utf8', 8, 8 + headerLength));
      const body = buffered.subarray(8 + headerLength, end);
      buffered = buffered.subarray(end);
      if (!dying) runInvocation(handler, header, body);
    }
  });
  requests.on('end', () => process.exit(0));
  requests.on('error', () => process.exit(0));
}

function onFatal(error, type) {
  // As in Lambda: an uncaught error fails the running invocation and ends the runtime process.
  if (dying) return;
  dying = true;
  if (inFlight) {
    const formatted = formatError(error);
    send(KIND_FATAL_ERROR, Buffer.from(JSON.stringify(type ? { ...formatted, errorType: type } : formatted)));
  }
  responses.end(() => process.exit(129));
  setTimeout(() => process.exit(129), 500).unref();
}

async function main() {
  countWrites(process.stdout, 'out');
  countWrites(process.stderr, 'err');
  patchConsole();
  process.on('uncaughtException', (error) => onFatal(error));
  process.on('unhandledRejection', (reason) => onFatal(reason, 'Runtime.UnhandledPromiseRejection'));
  const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  let handler;
  try {
    handler = await loadHandler(taskRoot, process.env._HANDLER || '');
  } catch (error) {
    send(KIND_INIT_ERROR, Buffer.from(JSON.stringify(formatError(error))));
    responses.end(() => process.exit(1));
    return;
  }
  send(KIND_READY, Buffer.from(PROTOCOL_VERSION));
  serve(handler);
}

void main();
