// Public API of htc-grid-cdk for library users: core model, ports and logging.
export * from './core';
export * from './ports';
export * from './logging';
