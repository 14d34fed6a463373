// Worker packaging: bundle a worker folder into a deterministic Lambda zip, unpack it into a task root.
export * from './bundle-plan';
export * from './deterministic-zip';
export * from './file-tree';
export * from './lambda-platform';
export { PipInstallError } from './pip-install';
export * from './runtime-detection';
export * from './task-root';
export * from './unpack-worker';
export * from './worker-bundle';
