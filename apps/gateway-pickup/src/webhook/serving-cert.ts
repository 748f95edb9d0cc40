import { createCA, describeCertificate, issueCertificate, loadCA, rotationDeadline, type KeyPairPem } from '@raven/pki';
import { LABELS, MANAGED_BY } from '@raven/api-types';
import { RESOURCES, isAlreadyExists, isConflict, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';
import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';

export interface ServingCertificate {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const secretSchema = z.object({
  type: z.string().optional(),
  metadata: z.object({ resourceVersion: z.string().optional() }).loose(),
  data: z.record(z.string(), z.string()).optional(),
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The Secret that holds the webhook CA's key: apart from the serving Secret, which every webhook replica mounts. */
export const caSecretName = (servingSecret: string) => `${servingSecret}-ca`;

type SecretData = z.infer<typeof secretSchema>;
type Ca = Awaited<ReturnType<typeof loadCA>>;

/** The CA in `data`, or why it is unusable (a sentence); undefined when there is none. */
async function readCa(data: Record<string, string> | undefined): Promise<{ ca?: Ca; problem?: string }> {
  const certPem = unb64(data?.['ca.crt']);
  const keyPem = unb64(data?.['ca.key']);
  if (!certPem && !keyPem) return {};
  try {
    const ca = await loadCA({ certPem: firstCertificate(certPem) || certPem, keyPem });
    rotationDeadline(ca.certPem);
    return { ca };
  } catch (err) {
    return { problem: `the CA certificate or key does not parse (${(err as Error).message})` };
  }
}

/** Why the serving certificate in `data` must be reissued, or undefined when it is fine. */
function leafProblem(data: Record<string, string> | undefined, wanted: { dnsNames: string[]; ipAddresses: string[] }, now: Date): string | undefined {
  const certPem = unb64(data?.['tls.crt']);
  const keyPem = unb64(data?.['tls.key']);
  if (!certPem || !keyPem || !unb64(data?.['ca.crt'])) return 'it is missing';
  try {
    createPrivateKey(keyPem);
    return needsRenewal({ certPem }, wanted, now) ? 'it is due for renewal or lacks a wanted name' : undefined;
  } catch (err) {
    return `it does not parse (${(err as Error).message})`;
  }
}

/**
 * The webhook's serving certificate (with the CA bundle) lives in one Secret, so every replica serves the same chain
 * and the CRD needs one CA bundle; the CA's private key lives in a second Secret, so whoever can read the serving
 * Secret (every webhook Pod) cannot mint certificates. The first replica to start creates both; any replica renews
 * the leaf at 80% of its life or when the wanted names change, and the CA at 80% of its own (conflicts resolve by
 * re-reading). A corrupt Secret is reported and repaired by reissuing, never a crash; a CA key found in the serving
 * Secret (older versions kept it there) is moved out.
 */
export async function ensureServingCertificate(
  kube: KubeClient,
  log: Logger,
  opts: { namespace: string; secretName: string; dnsNames: string[]; ipAddresses: string[]; now?: Date },
): Promise<ServingCertificate> {
  const now = opts.now ?? new Date();
  const get = async (name: string): Promise<SecretData | undefined> => {
    try {
      return secretSchema.parse(await kube.get(RESOURCES.secrets, { namespace: opts.namespace, name }));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const put = async (name: string, existing: SecretData | undefined, type: string, data: Record<string, string>) => {
    // A Secret's type is immutable: one created by hand keeps its own.
    const body = {
      apiVersion: 'v1', kind: 'Secret', type: existing?.type ?? type,
      // The label lets an uninstall find what gateway-pickup created at run time.
      metadata: { name, namespace: opts.namespace, labels: { [LABELS.managedBy]: MANAGED_BY }, ...(existing ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
      data,
    };
    if (existing) await kube.replace(RESOURCES.secrets, { namespace: opts.namespace, name }, body);
    else await kube.create(RESOURCES.secrets, body);
  };
  const caName = caSecretName(opts.secretName);
  for (let attempt = 0; attempt < 5; attempt++) {
    const serving = await get(opts.secretName);
    const caSecret = await get(caName);
    // The CA: from its own Secret, else (migration) from the serving Secret of an older version.
    let found = await readCa(caSecret?.data);
    if (!found.ca && !found.problem && serving?.data?.['ca.key']) found = await readCa(serving.data);
    if (found.problem) log.warn({ secret: caName, problem: found.problem }, 'the webhook CA Secret is corrupt; issuing a new CA');
    const caValid = !!found.ca && rotationDeadline(found.ca.certPem) > now;
    const leafIssue = leafProblem(serving?.data, opts, now);
    if (leafIssue && serving?.data) log.warn({ secret: opts.secretName, problem: leafIssue }, 'reissuing the webhook serving certificate');
    const caStored = !!caSecret && !found.problem && caValid;
    if (!leafIssue && caStored && !serving?.data?.['ca.key']) {
      return { caPem: unb64(serving!.data!['ca.crt']), certPem: unb64(serving!.data!['tls.crt']), keyPem: unb64(serving!.data!['tls.key']) };
    }
    const ca = caValid ? found.ca! : await createCA('raven-gateway-pickup-webhook-ca', 3650);
    const leaf: KeyPairPem = await issueCertificate(ca, {
      commonName: opts.dnsNames[0] ?? 'raven-gateway-pickup-webhook',
      dnsNames: opts.dnsNames,
      ipAddresses: opts.ipAddresses,
      usages: ['server'],
      validityDays: 365,
    });
    // After a CA rotation the bundle carries the new CA and the previous one, so that servers still
    // presenting a leaf of the old CA keep verifying until they reload.
    const previousBundle = unb64(serving?.data?.['ca.crt']);
    const caBundle = caValid ? (previousBundle.includes(ca.certPem.trim()) ? previousBundle : ca.certPem) : `${ca.certPem}${found.ca ? firstCertificate(previousBundle) : ''}`;
    try {
      if (!caStored) await put(caName, caSecret, 'Opaque', { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) });
      await put(opts.secretName, serving, 'kubernetes.io/tls', { 'ca.crt': b64(caBundle), 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem) });
      log.info({ secret: opts.secretName, notAfter: describeCertificate(leaf.certPem).notAfter, caRotated: !caValid }, 'webhook serving certificate issued');
      return { caPem: caBundle, certPem: leaf.certPem, keyPem: leaf.keyPem };
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err)) throw err;
      // another replica won the race: use what it wrote
    }
  }
  throw new Error(`could not settle the webhook certificate Secrets ${opts.namespace}/${opts.secretName} and ${caName}`);
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
