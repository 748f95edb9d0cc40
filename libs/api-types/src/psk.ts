import { createHash, hkdfSync } from 'node:crypto';

/** The tunnel PSK's Secret, as upstream Raven names it (in the Raven namespace). */
export const PSK_SECRET = { name: 'raven-agent-secret', key: 'vpn-connection-psk' } as const;

/** WireGuard's preshared key from the PSK: its sha256, as upstream derives it. */
export function wireguardPresharedKey(psk: string): string {
  return createHash('sha256').update(psk).digest('base64');
}

const FINGERPRINT_INFO = 'raven psk fingerprint v1';

/**
 * A one-way name for a PSK, so an agent's report and the Secret can be compared without either value leaving its
 * place: 64 bits of HKDF-SHA256 under a label of its own (no other key is derived that way).
 */
export function pskFingerprint(psk: string): string {
  return Buffer.from(hkdfSync('sha256', psk, Buffer.alloc(0), FINGERPRINT_INFO, 8)).toString('hex');
}
