import { EventEmitter } from 'node:events';

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateStatus {
  ready: boolean;
  subject?: string;
  notAfter?: Date;
  renewAt?: Date;
  lastError?: string;
}

/**
 * A certificate and key that may change over time (rotation, re-issue after a SAN change, a remounted Secret).
 * Consumers read `current()` for each new connection and listen to `change` to refresh long-lived contexts.
 */
export abstract class CertificateSource extends EventEmitter<{ change: [pair: KeyPair] }> {
  protected pair: KeyPair | undefined;
  protected lastError: string | undefined;

  constructor(readonly name: string) {
    super();
  }

  current(): KeyPair | undefined {
    return this.pair;
  }

  abstract start(): void;
  abstract stop(): Promise<void>;
  abstract status(): CertificateStatus;

  /** Resolves once a certificate is available (or the signal aborts). */
  whenReady(signal?: AbortSignal): Promise<KeyPair | undefined> {
    if (this.pair) return Promise.resolve(this.pair);
    return new Promise((resolve) => {
      const onChange = (pair: KeyPair) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(pair);
      };
      const onAbort = () => {
        this.off('change', onChange);
        resolve(undefined);
      };
      this.once('change', onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  protected publish(pair: KeyPair): void {
    this.pair = pair;
    this.lastError = undefined;
    this.emit('change', pair);
  }
}
