// The client SDK's public surface.
export * from './grid-client';
export * from './session-handle';
export * from './task-result';
export * from './session-summary';
