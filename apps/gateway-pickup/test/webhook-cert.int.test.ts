import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KubeClient, RESOURCES, createLogger } from '@raven/controller-kit';
import { createCA, describeCertificate, issueCertificate } from '@raven/pki';
import { adminClient, serviceAccountKubeconfig } from '@raven/testbed';
import { caSecretName, ensureServingCertificate } from '../src/webhook/serving-cert.ts';

/** The webhook's certificate Secrets in the real apiserver, written with gateway-pickup's own RBAC. */
const cluster = inject('cluster');
const ns = 'kube-system';
// gateway-pickup's Role names its Secrets; the test uses those names and restores what was there.
const secretName = 'raven-gateway-pickup-webhook-certs';
const names = { dnsNames: ['raven-gateway-pickup-webhook', 'raven-gateway-pickup-webhook.kube-system.svc'], ipAddresses: [] };
let admin: KubeClient;
let pickup: KubeClient;
const saved = new Map<string, unknown>();
const log = createLogger('t', { level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'raven-webhook-cert-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');
type Secret = { metadata: { resourceVersion?: string }; data?: Record<string, string> };
const read = (name: string) => admin.get<Secret>(RESOURCES.secrets, { namespace: ns, name }).catch(() => undefined);
const remove = (name: string) => admin.delete(RESOURCES.secrets, { namespace: ns, name }).catch(() => undefined);
const write = async (name: string, data: Record<string, string>) => {
  await remove(name);
  await admin.create(RESOURCES.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, data });
};

beforeAll(async () => {
  admin = await adminClient(cluster);
  pickup = await KubeClient.load({ kubeconfig: await serviceAccountKubeconfig(cluster, ns, 'raven-gateway-pickup', dir), userAgent: 'webhook-cert-test' });
  for (const name of [secretName, caSecretName(secretName)]) saved.set(name, await read(name));
});
afterAll(async () => {
  // Put back what the cluster's own webhook uses.
  for (const [name, secret] of saved) {
    await remove(name);
    if (secret) await admin.create(RESOURCES.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, data: (secret as Secret).data, type: name === secretName ? 'kubernetes.io/tls' : 'Opaque' });
  }
  pickup?.close();
  admin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the webhook certificate Secrets', () => {
  it('keep the CA key apart from the serving certificate', async () => {
    await remove(secretName);
    await remove(caSecretName(secretName));
    const cert = await ensureServingCertificate(pickup, log, { namespace: ns, secretName, ...names });
    const serving = await read(secretName);
    const ca = await read(caSecretName(secretName));
    expect(Object.keys(serving!.data!).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(Object.keys(ca!.data!).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(describeCertificate(cert.certPem).dnsNames).toEqual(expect.arrayContaining(names.dnsNames));
    // Settled: a second call changes nothing.
    await ensureServingCertificate(pickup, log, { namespace: ns, secretName, ...names });
    expect((await read(secretName))!.metadata.resourceVersion).toBe(serving!.metadata.resourceVersion);
  });

  it('moves a CA key found in the serving Secret (older versions) into its own Secret, keeping the CA', async () => {
    const oldCa = await createCA('old-ca', 30);
    const leaf = await issueCertificate(oldCa, { commonName: 'x', dnsNames: names.dnsNames, usages: ['server'], validityDays: 30 });
    await remove(caSecretName(secretName));
    await write(secretName, { 'ca.crt': b64(oldCa.certPem), 'ca.key': b64(oldCa.keyPem), 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) });
    const cert = await ensureServingCertificate(pickup, log, { namespace: ns, secretName, ...names });
    expect(cert.caPem).toContain(oldCa.certPem.trim());
    expect(Object.keys((await read(secretName))!.data!)).not.toContain('ca.key');
    expect(Buffer.from((await read(caSecretName(secretName)))!.data!['ca.key']!, 'base64').toString()).toBe(oldCa.keyPem);
  });

  it.each<[string, Record<string, string>]>([
    ['a serving certificate that is not PEM', { 'ca.crt': b64('garbage'), 'tls.crt': b64('not a certificate'), 'tls.key': b64('not a key') }],
    ['an empty serving Secret', {}],
  ])('repair %s instead of crashing', async (_d, data) => {
    await write(secretName, data);
    await write(caSecretName(secretName), { 'ca.crt': b64('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), 'ca.key': b64('nope') });
    const cert = await ensureServingCertificate(pickup, log, { namespace: ns, secretName, ...names });
    expect(describeCertificate(cert.certPem).dnsNames).toEqual(expect.arrayContaining(names.dnsNames));
    expect(Object.keys((await read(caSecretName(secretName)))!.data!).sort()).toEqual(['ca.crt', 'ca.key']);
  });
});
