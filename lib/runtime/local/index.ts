// Public surface of the local Lambda-compatible runtime.
export {
  createLocalInvoker,
  createGridSlotInvoker,
  DEFAULT_PYTHON_MAX_QUEUED,
  defaultMaxQueued,
  LocalInvoker,
  type LocalRuntimeOptions,
  restartDelayMs,
} from './local-invoker';
export { RuntimeApiServer, type RuntimeApiEvent, type RuntimeApiAnswer } from './runtime-api-server';
export { OutputCapture, type OutputListener, type OutputStream } from './output-capture';
export { lambdaEnvironment, lambdaIdentity, clientContextOf, LOCAL_ACCOUNT_ID } from './lambda-environment';
