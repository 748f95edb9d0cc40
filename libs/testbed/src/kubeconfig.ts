import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export type Credential = { clientCertPem: string; clientKeyPem: string } | { token: string };

/** A one-cluster, one-user kubeconfig with everything embedded. */
export function kubeconfigYaml(server: string, caPem: string, credential: Credential, name = 'raven'): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const user = 'token' in credential
    ? { token: credential.token }
    : { 'client-certificate-data': b64(credential.clientCertPem), 'client-key-data': b64(credential.clientKeyPem) };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  });
}

export function writeKubeconfig(path: string, server: string, caPem: string, credential: Credential, name?: string): string {
  writeFileSync(path, kubeconfigYaml(server, caPem, credential, name), { mode: 0o600 });
  return path;
}
