// The HTTP API: its handlers (ApiHandlers), the local Node server, and what they report about agents and worker output.
export * from './agents';
export * from './api-error';
export * from './api-handlers';
export * from './dashboard-assets';
export * from './dashboard-proxy';
export * from './grid-events';
export * from './limits';
export * from './node-server';
export * from './output-tails';
export * from '../client/session-summary';
export * from './task-views';
