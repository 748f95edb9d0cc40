export * from './logger.ts';
export * from './errors.ts';
export * from './cli.ts';
export * from './kube-client.ts';
export * from './health.ts';
export * from './shutdown.ts';
