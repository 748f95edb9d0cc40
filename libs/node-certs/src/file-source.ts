import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from '@raven/controller-kit';
import { keyMatchesCertificate, viewCertificate } from './inspect.ts';
import { CertificateSource, type CertificateStatus } from './source.ts';

export interface FileSourceOptions {
  log: Logger;
  name: string;
  certFile: string;
  keyFile: string;
  /** How often the files are re-read (mounted Secrets are swapped by symlink, which watch events miss). */
  pollMs?: number;
}

/**
 * A certificate and key from mounted files (cert-manager, a Secret): re-read periodically; a new pair is taken only
 * when it is complete and matching, so a half-updated mount never replaces a working certificate.
 */
export class FileCertificateSource extends CertificateSource {
  private timer: NodeJS.Timeout | undefined;
  private digest = '';

  constructor(private readonly opts: FileSourceOptions) {
    super(opts.name);
  }

  start(): void {
    this.reload();
    this.timer = setInterval(() => this.reload(), this.opts.pollMs ?? 10_000);
    this.timer.unref();
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    return Promise.resolve();
  }

  status(): CertificateStatus {
    const view = this.pair ? viewCertificate(this.pair.certPem) : undefined;
    return { ready: !!view && view.notAfter.getTime() > Date.now(), subject: view?.commonName, notAfter: view?.notAfter, lastError: this.lastError };
  }

  private reload(): void {
    try {
      const certPem = readFileSync(this.opts.certFile, 'utf8');
      const keyPem = readFileSync(this.opts.keyFile, 'utf8');
      const digest = createHash('sha256').update(certPem).update(keyPem).digest('hex');
      if (digest === this.digest) return;
      if (!keyMatchesCertificate(certPem, keyPem)) throw new Error('the key does not match the certificate');
      this.digest = digest;
      const view = viewCertificate(certPem);
      this.opts.log.info({ cert: this.name, file: this.opts.certFile, subject: view.commonName, notAfter: view.notAfter }, 'certificate loaded from file');
      this.lastError = undefined;
      this.publish({ certPem, keyPem });
    } catch (err) {
      const error = `${this.opts.certFile}: ${(err as Error).message}`;
      // Once per distinct failure: an optional Secret that is absent would otherwise warn every poll.
      if (error !== this.lastError) this.opts.log.warn({ cert: this.name, err: error }, 'cannot load the certificate files');
      this.lastError = error;
    }
  }
}
