import { join } from 'node:path';
import { KubeClient } from '@raven/controller-kit';
import { writeKubeconfig } from './kubeconfig.ts';

export interface ApiAccess {
  server: string;
  kubeconfig: string;
  caPem: string;
}

/**
 * A kubeconfig that authenticates as a ServiceAccount (a TokenRequest token), so a process under test has exactly
 * the permissions its Role grants: a missing rule fails the test instead of hiding behind the admin credential.
 */
export async function serviceAccountKubeconfig(access: ApiAccess, namespace: string, name: string, dir: string, expirationSeconds = 86_400): Promise<string> {
  const admin = await KubeClient.load({ kubeconfig: access.kubeconfig, userAgent: 'raven-testbed' });
  try {
    const review = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
    });
    return writeKubeconfig(join(dir, `${namespace}-${name}.kubeconfig`), access.server, access.caPem, { token: review.status.token }, name);
  } finally {
    admin.close();
  }
}
