// Public surface of the pure core: task model, lifecycle, configuration, handler names, errors.
export * from './config';
export * from './errors';
export * from './handler';
export * from './runtime-kind';
export * from './task';
export * from './task-lifecycle';
export * from './task-state';
export * from './result-json';
export * from './json-escape';
export * from './grid-resources';
export * from './agent-heartbeat';
export * from './api-views';
