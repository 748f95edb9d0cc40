import type { CertificateSource, KeyPair } from './source.ts';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/**
 * grpc-js's experimental CertificateProvider, fed by a CertificateSource: channels and servers built with
 * `experimental.createCertificateProvider{Channel,Server}Credentials(provider, provider, ...)` pick up a rotated
 * certificate for every new connection without being rebuilt. (Pass the same object for both arguments: grpc-js 1.14
 * swaps the two parameters of the server variant internally.)
 */
export class GrpcCertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private readonly identity: CertificateSource | undefined, private caPem: string) {
    identity?.on('change', (pair) => {
      for (const listener of this.identityListeners) listener(toUpdate(pair));
    });
  }

  setCa(caPem: string): void {
    this.caPem = caPem;
    for (const listener of this.caListeners) listener({ caCertificate: Buffer.from(caPem) });
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    // Asynchronously: grpc-js registers its watcher only after subscribing, and would miss a synchronous first update.
    queueMicrotask(() => this.caListeners.has(listener) && listener({ caCertificate: Buffer.from(this.caPem) }));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => {
      const pair = this.identity?.current();
      if (pair && this.identityListeners.has(listener)) listener(toUpdate(pair));
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}

const toUpdate = (pair: KeyPair) => ({ certificate: Buffer.from(pair.certPem), privateKey: Buffer.from(pair.keyPem) });
