export * from './box.ts';
export * from './hosts.ts';
export * from './ipv4.ts';
export * from './network.ts';
export * from './node.ts';
export * from './probes.ts';
export * from './sweep.ts';
export * from './topology.ts';
