import type {} from 'vitest';
import type { ClusterInfo } from './cluster.ts';

// What the control-plane global setup provides to every test (`inject('cluster')`).
declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}
