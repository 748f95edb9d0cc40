import { createHash } from 'node:crypto';
import { RESOURCES, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';

export const PSK_SECRET = { name: 'raven-agent-secret', key: 'vpn-connection-psk' } as const;

/**
 * The tunnel PSK from the Secret kube-system/raven-agent-secret. IPsec uses the value itself; WireGuard's preshared
 * key is its sha256 (as upstream derives it). Read with a GET on that one Secret, so the agent's Role needs no
 * list/watch on Secrets. A failed read keeps the current key; a deleted Secret clears it.
 */
export class PresharedKey {
  private raw?: string;

  constructor(private readonly kube: KubeClient, private readonly log: Logger, private readonly namespace: string) {}

  get value(): string | undefined {
    return this.raw;
  }

  get wireguardKey(): string | undefined {
    return this.raw ? createHash('sha256').update(this.raw).digest('base64') : undefined;
  }

  /** Re-reads the Secret; true when the key changed. */
  async refresh(): Promise<boolean> {
    let next: string | undefined;
    try {
      const secret = await this.kube.get<{ data?: Record<string, string> }>(RESOURCES.secrets, { namespace: this.namespace, name: PSK_SECRET.name });
      const data = secret.data?.[PSK_SECRET.key];
      next = data ? Buffer.from(data, 'base64').toString('utf8') : undefined;
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn({ err }, 'could not read the PSK Secret; keeping the current key');
        return false;
      }
    }
    const changed = next !== this.raw;
    this.raw = next;
    return changed;
  }
}
