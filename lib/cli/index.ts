// The CLI's public surface, also used by the benchmarks.
export * from '../local-grid';
export { main, buildProgram } from './program';
