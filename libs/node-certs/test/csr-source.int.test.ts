import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pino } from 'pino';
import { RESOURCES, type KubeClient, type ResourceType } from '@raven/controller-kit';
import { adminClient, uniqueName, waitFor } from '@raven/testbed';
import { CsrCertificateSource, issuedBy, viewCertificate, type CertificateSpec, type CsrSourceOptions } from '../src/index.ts';

/**
 * CsrCertificateSource against the real apiserver and kube-controller-manager's signers. The test approves (or denies)
 * the CSRs it files, as a cluster admin would; the approval policy itself is gateway-pickup's csrapprover's business.
 */
const cluster = inject('cluster');
const log = pino({ level: process.env.DEBUG_CERTS ? 'debug' : 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'raven-csr-source-'));
const prefix = uniqueName('certs');
let kube: KubeClient;
let running = true;
let verdict: 'Approved' | 'Denied' = 'Approved';
let approver: Promise<void>;
const caPem = () => readFileSync(cluster.caCertFile, 'utf8');
const sources: CsrCertificateSource[] = [];

type Csr = { metadata: { name: string }; status?: { conditions?: unknown[] } } & Record<string, unknown>;
const clusterRoleBindings: ResourceType = { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', namespaced: false };

beforeAll(async () => {
  kube = await adminClient(cluster);
  // The test bed's kube-controller-manager user lacks the certificate controller's rights; grant them (idempotent).
  await kube.create(clusterRoleBindings, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'raven-testbed-kcm-certificate-controller' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:controller:certificate-controller' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:kube-controller-manager' }],
  }).catch(() => undefined);
  approver = (async () => {
    while (running) {
      const { items } = await kube.list<Csr>(RESOURCES.csrs).catch(() => ({ items: [] as Csr[] }));
      for (const csr of items) {
        if (!csr.metadata.name.startsWith(prefix) || (csr.status?.conditions ?? []).length > 0) continue;
        await kube.replace(RESOURCES.csrs, { name: csr.metadata.name, subresource: 'approval' }, {
          ...csr, status: { conditions: [{ type: verdict, status: 'True', reason: 'Test', message: `${verdict.toLowerCase()} by the test` }] },
        }).catch(() => undefined);
      }
      await sleep(100);
    }
  })();
});

afterAll(async () => {
  running = false;
  await approver;
  await Promise.all(sources.map((s) => s.stop()));
  kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

function source(name: string, spec: () => CertificateSpec | undefined, overrides: Partial<CsrSourceOptions> = {}): CsrCertificateSource {
  const s = new CsrCertificateSource({
    kube, log, name, signerName: 'kubernetes.io/kubelet-serving', usages: ['digital signature', 'server auth'], spec,
    csrNamePrefix: `${prefix}-${name}`, dir, trustBundle: caPem, pollMs: 100, ...overrides,
  });
  sources.push(s);
  s.start();
  return s;
}

const servingSpec = (ips: string[]): CertificateSpec => ({ commonName: 'system:node:certs-a', organizations: ['system:nodes'], dnsNames: ['certs-a'], ipAddresses: ips });

describe('CsrCertificateSource', () => {
  it('gets a certificate signed by the cluster CA, keeps it across restarts, and re-requests when the SANs change', async () => {
    let ips = ['10.1.0.1'];
    const first = source('serving', () => servingSpec(ips));
    const pair = await first.whenReady();
    expect(issuedBy(pair!.certPem, caPem())).toBe(true);
    expect(viewCertificate(pair!.certPem)).toMatchObject({ commonName: 'system:node:certs-a', organizations: ['system:nodes'], dnsNames: ['certs-a'], ipAddresses: ['10.1.0.1'] });
    await first.stop();

    const restarted = source('serving', () => servingSpec(ips));
    expect(restarted.current()?.certPem).toBe(pair!.certPem);
    await sleep(300);
    expect(restarted.issuedCount).toBe(0);

    ips = ['10.1.0.1', '198.18.0.11'];
    restarted.refresh();
    await waitFor('a certificate with the public IP', async () => viewCertificate(restarted.current()!.certPem).ipAddresses.includes('198.18.0.11'), 10_000);
    expect(restarted.issuedCount).toBe(1);
  });

  it('rotates before expiry', async () => {
    // kube-controller-manager grants at least 10 minutes; renewing 598 s before expiry renews about every 2 s.
    const rotating = source('client', () => ({ commonName: 'raven:proxy-client:certs-a', organizations: [], dnsNames: [], ipAddresses: [] }), {
      signerName: 'kubernetes.io/kube-apiserver-client', usages: ['digital signature', 'client auth'], expirationSeconds: 600, renewBeforeMs: 598_000,
    });
    const first = await rotating.whenReady();
    expect(viewCertificate(first!.certPem).notAfter.getTime() - Date.now()).toBeLessThan(601_000);
    await waitFor('two rotations', async () => rotating.issuedCount >= 3, 20_000, 100);
    expect(rotating.current()!.certPem).not.toBe(first!.certPem);
    expect(rotating.status().ready).toBe(true);
  });

  it('reports a denial and keeps trying', async () => {
    verdict = 'Denied';
    try {
      const denied = source('denied', () => servingSpec(['10.1.0.9']), { dir: undefined });
      await waitFor('the denial to be reported', async () => /denied: Test denied by the test/.test(denied.status().lastError ?? ''), 10_000, 100);
      expect(denied.status().ready).toBe(false);
    } finally {
      verdict = 'Approved';
    }
  });
});
