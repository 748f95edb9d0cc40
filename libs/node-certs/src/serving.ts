import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import type { CertificateSource } from './source.ts';

/**
 * Keeps a TLS server (HTTPS, HTTP/2) on the source's current certificate: connections accepted after a rotation get
 * the new one, open connections keep theirs. `extra` (a client CA, for example) is applied with every certificate.
 */
export function serveCurrentCertificate(server: TlsServer, source: CertificateSource, extra: SecureContextOptions = {}): void {
  const apply = () => {
    const pair = source.current();
    if (pair) server.setSecureContext({ ...extra, cert: pair.certPem, key: pair.keyPem });
  };
  apply();
  source.on('change', apply);
  server.once('close', () => source.off('change', apply));
}
