// The RIE invoke API: the agent's client (RieInvoker), a server for any runtime (RieServer), the runtime killer.
export * from './rie-invoker';
export * from './rie-protocol';
export * from './rie-server';
export * from './runtime-killer';
