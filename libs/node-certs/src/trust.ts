import { readFileSync } from 'node:fs';
import { ConfigError, type KubeClient } from '@raven/controller-kit';

/**
 * The CA bundle that signs node certificates: an explicit file, else the cluster CA of the kubeconfig (the in-cluster
 * service-account CA), which is the CSR signers' CA in kubeadm-style clusters.
 */
export function loadTrustBundle(kube: KubeClient, caFile: string | undefined): string {
  if (caFile) return readFileSync(caFile, 'utf8');
  if (kube.caPem) return kube.caPem;
  throw new ConfigError('no CA bundle: the kubeconfig has no cluster CA; pass the CA file flag');
}
