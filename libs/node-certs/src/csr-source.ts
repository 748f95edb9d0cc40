import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff, RESOURCES, delay, type KubeClient, type Logger } from '@raven/controller-kit';
import { createCsr } from '@raven/pki';
import { z } from 'zod';
import { issuedBy, keyMatchesCertificate, normalizeIp, viewCertificate, type CertificateView } from './inspect.ts';
import { CertificateSource, type CertificateStatus, type KeyPair } from './source.ts';

/** What the certificate must say; the source re-requests whenever the current one says something else. */
export interface CertificateSpec {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
}

export type KeyUsage = 'digital signature' | 'key encipherment' | 'server auth' | 'client auth';

export interface CsrSourceOptions {
  kube: KubeClient;
  log: Logger;
  /** Short name: the files in `dir` and the log lines use it. */
  name: string;
  signerName: string;
  usages: KeyUsage[];
  /** The wanted subject and SANs; undefined while they are not known yet (caches not synced). */
  spec: () => CertificateSpec | undefined;
  /** CSR objects are created with `generateName: <prefix>-`. */
  csrNamePrefix: string;
  /** Keeps the key and certificate across restarts (0600 files). Without it every start requests anew. */
  dir?: string;
  /** Issued certificates must chain to this bundle (the signer's CA); a mismatch is an error, not a silent accept. */
  trustBundle?: () => string | undefined;
  /** spec.expirationSeconds of the CSR (the signer may shorten it; minimum 600). */
  expirationSeconds?: number;
  /** Renew this long before expiry; default: at 70-90% of the lifetime (jittered, as the kubelet does). */
  renewBeforeMs?: number;
  pollMs?: number;
  /** Give up waiting for approval and signing after this long, and request again. */
  issueTimeoutMs?: number;
}

export class CsrDeniedError extends Error {
  override readonly name = 'CsrDeniedError';
}

const csrStatusSchema = z.object({
  metadata: z.object({ name: z.string() }),
  status: z.object({
    certificate: z.string().optional(),
    conditions: z.array(z.object({ type: z.string(), reason: z.string().optional(), message: z.string().optional() })).optional(),
  }).optional(),
});

const sorted = (values: string[]) => [...new Set(values)].sort();
const sameList = (a: string[], b: string[]) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

export function certificateSatisfies(cert: CertificateView, spec: CertificateSpec): boolean {
  return cert.commonName === spec.commonName && sameList(cert.organizations, spec.organizations)
    && sameList(cert.dnsNames, spec.dnsNames) && sameList(cert.ipAddresses, spec.ipAddresses.map(normalizeIp));
}

/**
 * A certificate from the Kubernetes CSR API: generates a key, files a CertificateSigningRequest, waits for an
 * approver and the signer, and keeps the result fresh: it requests again before expiry and whenever `spec()` changes
 * (call `refresh()` when it may have). The previous certificate keeps serving until its successor is issued.
 */
export class CsrCertificateSource extends CertificateSource {
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private renewAt: Date | undefined;
  private issued = 0;

  constructor(private readonly opts: CsrSourceOptions) {
    super(opts.name);
  }

  start(): void {
    if (this.loop) return;
    this.loadPersisted();
    this.abort = new AbortController();
    this.loop = this.run(this.abort.signal);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  /** The wanted spec may have changed: check now rather than at the next renewal. */
  refresh(): void {
    this.wake?.();
  }

  /** Certificates issued since start (for tests and metrics). */
  get issuedCount(): number {
    return this.issued;
  }

  status(): CertificateStatus {
    const view = this.pair ? viewCertificate(this.pair.certPem) : undefined;
    return {
      ready: !!view && view.notAfter.getTime() > Date.now(),
      subject: view?.commonName,
      notAfter: view?.notAfter,
      renewAt: this.renewAt,
      lastError: this.lastError,
    };
  }

  private files(): { cert: string; key: string } | undefined {
    return this.opts.dir ? { cert: join(this.opts.dir, `${this.name}.crt`), key: join(this.opts.dir, `${this.name}.key`) } : undefined;
  }

  private loadPersisted(): void {
    const files = this.files();
    if (!files || !existsSync(files.cert) || !existsSync(files.key)) return;
    try {
      const pair = { certPem: readFileSync(files.cert, 'utf8'), keyPem: readFileSync(files.key, 'utf8') };
      const view = viewCertificate(pair.certPem);
      const trust = this.opts.trustBundle?.();
      if (!keyMatchesCertificate(pair.certPem, pair.keyPem) || view.notAfter.getTime() <= Date.now() || (trust && !issuedBy(pair.certPem, trust))) {
        this.opts.log.info({ cert: this.name }, 'ignoring the stored certificate (expired, mismatched or untrusted)');
        return;
      }
      this.adopt(pair);
      this.opts.log.info({ cert: this.name, notAfter: view.notAfter, renewAt: this.renewAt }, 'using the stored certificate');
    } catch (err) {
      this.opts.log.warn({ cert: this.name, err }, 'cannot read the stored certificate');
    }
  }

  private persist(pair: KeyPair): void {
    const files = this.files();
    if (!files) return;
    mkdirSync(this.opts.dir!, { recursive: true, mode: 0o700 });
    // Each file by rename; a crash between the two leaves a mismatched pair, which loadPersisted detects and ignores.
    for (const [path, content] of [[files.key, pair.keyPem], [files.cert, pair.certPem]] as const) {
      writeFileSync(`${path}.tmp`, content, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    }
  }

  private adopt(pair: KeyPair): void {
    const view = viewCertificate(pair.certPem);
    const lifetime = view.notAfter.getTime() - view.notBefore.getTime();
    const at = this.opts.renewBeforeMs !== undefined
      ? view.notAfter.getTime() - this.opts.renewBeforeMs
      : view.notBefore.getTime() + lifetime * (0.7 + Math.random() * 0.2);
    this.renewAt = new Date(at);
    this.publish(pair);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      this.wake = done;
    });
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(1_000, 60_000);
    while (!signal.aborted) {
      const want = this.opts.spec();
      if (!want) {
        await this.sleep(1_000);
        continue;
      }
      const current = this.pair ? viewCertificate(this.pair.certPem) : undefined;
      const fresh = current && this.renewAt && Date.now() < this.renewAt.getTime();
      if (current && fresh && certificateSatisfies(current, want)) {
        await this.sleep(this.renewAt!.getTime() - Date.now());
        continue;
      }
      const why = !current ? 'none yet' : !fresh ? 'renewal due' : 'subject or SANs changed';
      try {
        const pair = await this.request(want, why, signal);
        if (!pair) continue;
        this.persist(pair);
        this.issued++;
        this.adopt(pair);
        backoff.reset();
        const view = viewCertificate(pair.certPem);
        this.opts.log.info({ cert: this.name, subject: view.commonName, dnsNames: view.dnsNames, ipAddresses: view.ipAddresses, notAfter: view.notAfter, renewAt: this.renewAt }, 'certificate issued');
      } catch (err) {
        if (signal.aborted) break;
        this.lastError = (err as Error).message;
        const wait = backoff.next();
        this.opts.log.warn({ cert: this.name, err: this.lastError, retryInMs: Math.round(wait) }, 'certificate request failed');
        await this.sleep(wait);
      }
    }
  }

  private async request(spec: CertificateSpec, why: string, signal: AbortSignal): Promise<KeyPair | undefined> {
    const { kube, log } = this.opts;
    const { csrPem, keyPem } = await createCsr(spec);
    const created = csrStatusSchema.parse(await kube.create(RESOURCES.csrs, {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { generateName: `${this.opts.csrNamePrefix}-`, labels: { 'app.kubernetes.io/managed-by': 'raven-ts' } },
      spec: {
        request: Buffer.from(csrPem).toString('base64'),
        signerName: this.opts.signerName,
        usages: this.opts.usages,
        ...(this.opts.expirationSeconds ? { expirationSeconds: this.opts.expirationSeconds } : {}),
      },
    }));
    const name = created.metadata.name;
    log.info({ cert: this.name, csr: name, signer: this.opts.signerName, why, dnsNames: spec.dnsNames, ipAddresses: spec.ipAddresses }, 'certificate requested');
    const deadline = Date.now() + (this.opts.issueTimeoutMs ?? 15 * 60_000);
    while (!signal.aborted) {
      const csr = csrStatusSchema.parse(await kube.get(RESOURCES.csrs, { name }));
      const refused = csr.status?.conditions?.find((c) => c.type === 'Denied' || c.type === 'Failed');
      if (refused) throw new CsrDeniedError(`CSR ${name} ${refused.type.toLowerCase()}: ${refused.reason ?? ''} ${refused.message ?? ''}`.trim());
      const certificate = csr.status?.certificate;
      if (certificate) {
        const certPem = Buffer.from(certificate, 'base64').toString('utf8');
        if (!keyMatchesCertificate(certPem, keyPem)) throw new Error(`CSR ${name}: the issued certificate does not match our key`);
        const trust = this.opts.trustBundle?.();
        if (trust && !issuedBy(certPem, trust)) throw new Error(`CSR ${name}: the issued certificate does not chain to the trusted CA bundle (set the CA file flag to the signer's CA)`);
        return { certPem, keyPem };
      }
      if (Date.now() > deadline) throw new Error(`CSR ${name}: not approved and signed within ${Math.round((this.opts.issueTimeoutMs ?? 900_000) / 1000)} s`);
      await delay(this.opts.pollMs ?? 500, signal);
    }
    return undefined;
  }
}
