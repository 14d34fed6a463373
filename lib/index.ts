// Public API of htc-grid-cdk for library users: core model, ports, client SDK, the embedded grid and logging.
export * from './core';
export * from './ports';
export * from './logging';
export * from './client';
export { startEmbeddedGrid, type EmbeddedGrid, type EmbeddedGridOptions } from './cli/embedded-grid';
