// Loaded on demand by credentials.ts, so only processes with exotic kubeconfigs evaluate @kubernetes/client-node.
export { KubeConfig } from '@kubernetes/client-node';
