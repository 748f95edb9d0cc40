import 'reflect-metadata';
import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const SAN_OID = '2.5.29.17';

/** Everything a CSR would put into the certificate the Kubernetes signers issue: the whole subject and every SAN. */
export interface CsrFacts {
  commonName: string;
  organizations: string[];
  /** Subject attributes other than CN and O (OU, C, ...), as `type=value`: the signers copy them verbatim. */
  otherSubject: string[];
  dnsNames: string[];
  ipAddresses: string[];
  /** SANs other than DNS and IP (email, URI, ...), as `type:value`. */
  otherNames: string[];
  /** Extension OIDs besides subjectAltName. */
  otherExtensions: string[];
  /** The request is signed by the key it carries (proof of possession). */
  signatureValid: boolean;
}

export class CsrParseError extends Error {
  override readonly name = 'CsrParseError';
}

export async function inspectCsr(pem: string): Promise<CsrFacts> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new CsrParseError(`not a PKCS#10 request: ${(err as Error).message}`);
  }
  const facts: CsrFacts = { commonName: '', organizations: [], otherSubject: [], dnsNames: [], ipAddresses: [], otherNames: [], otherExtensions: [], signatureValid: false };
  const commonNames: string[] = [];
  for (const rdn of csr.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(rdn)) {
      if (type === 'CN') commonNames.push(...values);
      else if (type === 'O') facts.organizations.push(...values);
      else facts.otherSubject.push(...values.map((v) => `${type}=${v}`));
    }
  }
  // Two CNs would leave "which one is the user" to whoever reads the certificate: not well formed.
  if (commonNames.length > 1) facts.otherSubject.push(...commonNames.slice(1).map((v) => `CN=${v}`));
  facts.commonName = commonNames[0] ?? '';
  for (const ext of csr.extensions) {
    if (ext.type !== SAN_OID) {
      facts.otherExtensions.push(ext.type);
      continue;
    }
    for (const name of new x509.SubjectAlternativeNameExtension(ext.rawData).names.toJSON()) {
      if (name.type === 'dns') facts.dnsNames.push(name.value);
      else if (name.type === 'ip') facts.ipAddresses.push(name.value);
      else facts.otherNames.push(`${name.type}:${name.value}`);
    }
  }
  facts.signatureValid = await csr.verify().catch(() => false);
  return facts;
}

export interface CertificateView {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
}

export function viewCertificate(certPem: string): CertificateView {
  const cert = new X509Certificate(certPem);
  const subject = cert.subject.split('\n');
  const field = (key: string) => subject.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  const sans = (cert.subjectAltName ?? '').split(', ').filter(Boolean);
  return {
    commonName: field('CN')[0] ?? '',
    organizations: field('O'),
    dnsNames: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
    ipAddresses: sans.filter((s) => s.startsWith('IP Address:')).map((s) => normalizeIp(s.slice(11))),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** True when the private key belongs to the certificate. */
export function keyMatchesCertificate(certPem: string, keyPem: string): boolean {
  try {
    const fromCert = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    return Buffer.compare(fromCert, fromKey) === 0;
  } catch {
    return false;
  }
}

/** True when `certPem` was signed by one of the certificates in `caPem` (a bundle). */
export function issuedBy(certPem: string, caPem: string): boolean {
  const cert = new X509Certificate(certPem);
  for (const block of caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
    const ca = new X509Certificate(block);
    if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) return true;
  }
  return false;
}

/** Lower-case, and IPv4-mapped or zero-padded forms made canonical, so SAN comparisons are exact. */
export function normalizeIp(ip: string): string {
  const v = ip.trim().toLowerCase();
  if (!v.includes(':')) return v;
  try {
    return new URL(`http://[${v}]/`).hostname.slice(1, -1);
  } catch {
    return v;
  }
}
