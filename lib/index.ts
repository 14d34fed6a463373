// Public API of htc-grid-cdk: core model, ports, client SDK, the embedded grid, logging, and the CDK constructs.
export * from './core';
export * from './ports';
export * from './logging';
export * from './client';
export { startEmbeddedGrid, type EmbeddedGrid, type EmbeddedGridOptions } from './local-grid';
export * from './infra';
