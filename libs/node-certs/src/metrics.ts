import { Gauge, type Registry } from 'prom-client';
import type { CertificateSource } from './source.ts';

/** `raven_certificate_expiry_timestamp_seconds{certificate}`: when each source's current certificate expires. */
export function exportCertificateExpiry(registry: Registry, sources: ReadonlyArray<CertificateSource | undefined>): void {
  new Gauge({
    name: 'raven_certificate_expiry_timestamp_seconds',
    help: 'Unix time at which the current certificate expires, by certificate (serving, client, target-client)',
    labelNames: ['certificate'],
    registers: [registry],
    collect() {
      this.reset();
      for (const source of sources) {
        const notAfter = source?.status().notAfter;
        if (notAfter) this.set({ certificate: source!.name }, notAfter.getTime() / 1_000);
      }
    },
  });
}
