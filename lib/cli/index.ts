// The CLI's public surface, also used by the benchmarks.
export * from './embedded-grid';
export { main, buildProgram } from './program';
