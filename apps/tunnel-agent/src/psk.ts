import { readFile } from 'node:fs/promises';
import { PSK_SECRET, pskFingerprint, wireguardPresharedKey, type AgentDiagnose } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';

/** Where the PSK comes from: the Secret through the API, or a file (the same Secret mounted as a volume). */
export type PskSource = { kind: 'secret'; kube: KubeClient; namespace: string } | { kind: 'file'; path: string };

/**
 * The tunnel PSK. IPsec uses the value itself; WireGuard's preshared key is its sha256 (as upstream derives it).
 * From the Secret kube-system/raven-agent-secret with a GET on that one Secret (the agent's Role needs no list/watch
 * on Secrets), or from a file: a mounted Secret needs no Secret access at all, and the kubelet updates it in place.
 * A failed read keeps the current key; a deleted Secret or an empty file clears it.
 */
export class PresharedKey {
  private raw?: string;
  private readError?: string;

  constructor(private readonly source: PskSource, private readonly log: Logger) {}

  get value(): string | undefined {
    return this.raw;
  }

  get wireguardKey(): string | undefined {
    return this.raw ? wireguardPresharedKey(this.raw) : undefined;
  }

  /** For the diagnose report: the source and a one-way fingerprint, never the value. */
  describe(): NonNullable<AgentDiagnose['psk']> {
    return { source: this.source.kind, ...(this.raw ? { fingerprint: pskFingerprint(this.raw) } : {}), ...(this.readError ? { readError: this.readError } : {}) };
  }

  /** Re-reads the source; true when the key changed. */
  async refresh(): Promise<boolean> {
    let next: string | undefined;
    try {
      next = await this.read();
      this.readError = undefined;
    } catch (err) {
      this.readError = (err as Error).message.slice(0, 300);
      this.log.warn({ err }, 'could not read the PSK; keeping the current key');
      return false;
    }
    const changed = next !== this.raw;
    this.raw = next;
    return changed;
  }

  private async read(): Promise<string | undefined> {
    if (this.source.kind === 'file') {
      // The bytes as the Secret holds them: a mounted key has no trailing newline to strip.
      const text = await readFile(this.source.path, 'utf8');
      return text.length > 0 ? text : undefined;
    }
    try {
      const secret = await this.source.kube.get<{ data?: Record<string, string> }>(RESOURCES.secrets, { namespace: this.source.namespace, name: PSK_SECRET.name });
      const data = secret.data?.[PSK_SECRET.key];
      return data ? Buffer.from(data, 'base64').toString('utf8') : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}
