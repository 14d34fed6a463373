// The local grid: a whole grid in one process on embedded backends (SQLite, files, local runtimes), its agent on the
// main thread or in worker threads.
export * from './embedded-grid';
export { LOCAL_PREFETCH, localAgentOptions, type LocalAgentInput } from './local-agent';
export * from './grid-identity';
