export * from './binaries.ts';
export * from './process.ts';
export * from './net.ts';
export * from './kubeconfig.ts';
export * from './kubectl.ts';
export * from './control-plane.ts';
export * from './cluster.ts';
export * from './apps.ts';
