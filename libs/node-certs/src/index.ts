export { CertificateSource, type KeyPair, type CertificateStatus } from './source.ts';
export { CsrCertificateSource, CsrDeniedError, certificateSatisfies, type CertificateSpec, type CsrSourceOptions, type KeyUsage } from './csr-source.ts';
export { FileCertificateSource, type FileSourceOptions } from './file-source.ts';
export { serveCurrentCertificate } from './serving.ts';
export { loadTrustBundle } from './trust.ts';
export {
  inspectCsr, viewCertificate, keyMatchesCertificate, issuedBy, normalizeIp, CsrParseError,
  type CsrFacts, type CertificateView,
} from './inspect.ts';
export { exportCertificateExpiry } from './metrics.ts';
