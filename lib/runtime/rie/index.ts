// The RIE HTTP invoke API: the agent's client (RieInvoker) and a server in front of any runtime (RieServer).
export * from './rie-invoker';
export * from './rie-protocol';
export * from './rie-server';
