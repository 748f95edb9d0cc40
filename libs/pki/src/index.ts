import 'reflect-metadata';
import { webcrypto, X509Certificate as NodeX509, randomBytes, createPrivateKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';

/**
 * Minimal X.509 toolkit on WebCrypto (ECDSA P-256): CAs, leaf certificates, CSRs for the Kubernetes CSR API,
 * and the facts needed to rotate before expiry. Keys leave as PKCS#8 PEM, which Go and Node both read.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const subtle = webcrypto.subtle;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends KeyPairPem {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

export type Usage = 'server' | 'client';

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usages: Usage[];
  validityDays?: number;
}

const DAY_MS = 86_400_000;

async function newKeys(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function keyFromPem(pem: string): Promise<CryptoKeyPair> {
  const nodeKey = createPrivateKey(pem);
  const der = nodeKey.export({ format: 'der', type: 'pkcs8' });
  const privateKey = await subtle.importKey('pkcs8', der, ALG, true, ['sign']);
  const jwk = nodeKey.export({ format: 'jwk' });
  const publicKey = await subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, ALG, true, ['verify']);
  return { privateKey, publicKey };
}

function subject(commonName: string, organizations: string[] = []): string {
  const escape = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  return [...organizations.map((o) => `O=${escape(o)}`), `CN=${escape(commonName)}`].join(', ');
}

const serial = () => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // positive
  return bytes.toString('hex');
};

export async function createCA(commonName: string, validityDays = 3650): Promise<CertificateAuthority> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject(commonName),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validityDays * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: cert.toString('pem') + '\n', keyPem: await keyToPem(keys.privateKey) };
}

export async function loadCA(pair: KeyPairPem): Promise<CertificateAuthority> {
  return { ...pair, cert: new x509.X509Certificate(pair.certPem), keys: await keyFromPem(pair.keyPem) };
}

function sanExtension(dnsNames: string[] = [], ipAddresses: string[] = []): x509.Extension[] {
  const names: x509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  return names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [];
}

const EKU = { server: x509.ExtendedKeyUsage.serverAuth, client: x509.ExtendedKeyUsage.clientAuth } as const;

export async function issueCertificate(ca: CertificateAuthority, opts: LeafOptions): Promise<KeyPairPem> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subject(opts.commonName, opts.organizations),
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (opts.validityDays ?? 365) * DAY_MS),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(opts.usages.map((u) => EKU[u])),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      ...sanExtension(opts.dnsNames, opts.ipAddresses),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyToPem(keys.privateKey) };
}

export interface CsrOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
}

/** A PKCS#10 request and its new private key, for `certificates.k8s.io/v1` CertificateSigningRequests. */
export async function createCsr(opts: CsrOptions): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject(opts.commonName, opts.organizations),
    keys,
    signingAlgorithm: ALG,
    extensions: sanExtension(opts.dnsNames, opts.ipAddresses),
  });
  return { csrPem: csr.toString('pem') + '\n', keyPem: await keyToPem(keys.privateKey) };
}

const SAN_OID = '2.5.29.17';

export interface ParsedCsr {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
}

export function parseCsr(pem: string): ParsedCsr {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const rdn = (type: string) => csr.subjectName.getField(type);
  const san = csr.extensions.find((e) => e.type === SAN_OID);
  const names = san ? new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON() : [];
  return {
    commonName: rdn('CN')[0] ?? '',
    organizations: rdn('O'),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
  };
}

export interface CertificateFacts {
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  ipAddresses: string[];
}

export function describeCertificate(certPem: string): CertificateFacts {
  const cert = new NodeX509(certPem);
  const sans = (cert.subjectAltName ?? '').split(', ').filter(Boolean);
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dnsNames: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
    ipAddresses: sans.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice(11).toLowerCase()),
  };
}

/** Rotate once 80% of the lifetime has passed, the same point the kubelet picks (roughly). */
export function rotationDeadline(certPem: string, fraction = 0.8): Date {
  const { notBefore, notAfter } = describeCertificate(certPem);
  return new Date(notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) * fraction);
}
