import { createCA, describeCertificate, issueCertificate, loadCA, rotationDeadline, type KeyPairPem } from '@raven/pki';
import { RESOURCES, isAlreadyExists, isConflict, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';
import { z } from 'zod';

export interface ServingCertificate {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const secretSchema = z.object({
  metadata: z.object({ resourceVersion: z.string().optional() }).loose(),
  data: z.record(z.string(), z.string()).optional(),
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/**
 * The webhook's CA and serving certificate live in one Secret, so every replica serves the same chain and the
 * CRD needs one CA bundle. The first replica to start creates it; any replica renews the leaf at 80% of its life
 * or when the wanted names change, and the CA at 80% of its own (conflicts resolve by re-reading).
 */
export async function ensureServingCertificate(
  kube: KubeClient,
  log: Logger,
  opts: { namespace: string; secretName: string; dnsNames: string[]; ipAddresses: string[]; now?: Date },
): Promise<ServingCertificate> {
  const now = opts.now ?? new Date();
  for (let attempt = 0; attempt < 5; attempt++) {
    let existing: z.infer<typeof secretSchema> | undefined;
    try {
      existing = secretSchema.parse(await kube.get(RESOURCES.secrets, { namespace: opts.namespace, name: opts.secretName }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const current = existing?.data
      ? { caPem: unb64(existing.data['ca.crt']), caKeyPem: unb64(existing.data['ca.key']), certPem: unb64(existing.data['tls.crt']), keyPem: unb64(existing.data['tls.key']) }
      : undefined;
    if (current && current.caPem && current.certPem && !needsRenewal(current, opts, now)) {
      return { caPem: current.caPem, certPem: current.certPem, keyPem: current.keyPem };
    }
    const caValid = current?.caPem && current.caKeyPem && rotationDeadline(current.caPem) > now;
    const ca = caValid ? await loadCA({ certPem: current.caPem, keyPem: current.caKeyPem }) : await createCA('raven-gateway-pickup-webhook-ca', 3650);
    const leaf: KeyPairPem = await issueCertificate(ca, {
      commonName: opts.dnsNames[0] ?? 'raven-gateway-pickup-webhook',
      dnsNames: opts.dnsNames,
      ipAddresses: opts.ipAddresses,
      usages: ['server'],
      validityDays: 365,
    });
    // After a CA rotation the bundle carries the new CA and the previous one, so that servers still
    // presenting a leaf of the old CA keep verifying until they reload.
    const caBundle = caValid ? current.caPem : `${ca.certPem}${firstCertificate(current?.caPem)}`;
    const body = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: opts.secretName, namespace: opts.namespace, ...(existing ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
      data: { 'ca.crt': b64(caBundle), 'ca.key': b64(ca.keyPem), 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) },
    };
    try {
      if (existing) await kube.replace(RESOURCES.secrets, { namespace: opts.namespace, name: opts.secretName }, body);
      else await kube.create(RESOURCES.secrets, body);
      log.info({ secret: opts.secretName, notAfter: describeCertificate(leaf.certPem).notAfter, caRotated: !caValid }, 'webhook serving certificate issued');
      return { caPem: caBundle, certPem: leaf.certPem, keyPem: leaf.keyPem };
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err)) throw err;
      // another replica won the race: use what it wrote
    }
  }
  throw new Error(`could not settle the webhook certificate Secret ${opts.namespace}/${opts.secretName}`);
}

function needsRenewal(current: { certPem: string }, wanted: { dnsNames: string[]; ipAddresses: string[] }, now: Date): boolean {
  const facts = describeCertificate(current.certPem);
  const hasAll = wanted.dnsNames.every((n) => facts.dnsNames.includes(n)) && wanted.ipAddresses.every((ip) => facts.ipAddresses.includes(ip));
  return !hasAll || rotationDeadline(current.certPem) <= now;
}

function firstCertificate(bundle: string | undefined): string {
  const match = bundle ? /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(bundle) : null;
  return match ? match[0] : '';
}
