import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface WireguardKeys {
  privateKey: string;
  publicKey: string;
  /** Where the private key lives (0600); `wg` reads it from this file, never from a command line. */
  privateKeyFile: string;
}

// DER prefixes of X25519 keys: the raw 32 key bytes follow them.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function publicKeyOf(privateKeyB64: string): string {
  const der = Buffer.concat([PKCS8_PREFIX, Buffer.from(privateKeyB64, 'base64')]);
  const spki = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  return spki.subarray(SPKI_PREFIX.length).toString('base64');
}

/**
 * The node's WireGuard key: generated once with node:crypto X25519 and kept in the state directory, so restarts
 * keep the same identity (upstream generated a new key on every start and dropped every tunnel).
 */
export function loadOrCreateKeys(stateDir: string): WireguardKeys {
  const privateKeyFile = join(stateDir, 'wireguard.key');
  if (!existsSync(privateKeyFile)) {
    mkdirSync(dirname(privateKeyFile), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('x25519');
    const raw = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
    const tmp = `${privateKeyFile}.tmp`;
    writeFileSync(tmp, `${raw.toString('base64')}\n`, { mode: 0o600 });
    renameSync(tmp, privateKeyFile);
  }
  const privateKey = readFileSync(privateKeyFile, 'utf8').trim();
  if (Buffer.from(privateKey, 'base64').length !== 32) throw new Error(`${privateKeyFile} does not hold a 32-byte base64 WireGuard key`);
  return { privateKey, publicKey: publicKeyOf(privateKey), privateKeyFile };
}
