export * from './constants.ts';
export * from './ports.ts';
export * from './gateway.ts';
export * from './conversion.ts';
export * from './helpers.ts';
export * from './crd.ts';
export * from './heartbeat.ts';
export * from './proxy.ts';
