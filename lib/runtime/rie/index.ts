// The RIE invoke API: the agent's client (RieInvoker), its wire protocol and the runtime killer.
export * from './rie-invoker';
export * from './rie-protocol';
export * from './runtime-killer';
