// Public surface of the CDK constructs: each usable alone, HtcGrid composing them, HtcGridStack deploying one grid.
export * from './app-config';
export * from './compute-plane';
export * from './container-images';
export * from './data-plane-bucket';
export * from './grid-api';
export * from './grid-monitoring';
export * from './grid-vpc';
export * from './htc-grid';
export * from './htc-grid-stack';
export * from './reaper';
export * from './secure-bucket';
export * from './task-queues';
export * from './task-table';
export * from './worker-bucket';
export * from './worker-bundle';
export * from './worker-bundling';
