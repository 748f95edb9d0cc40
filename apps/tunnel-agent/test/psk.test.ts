import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pskFingerprint, wireguardPresharedKey } from '@raven/api-types';
import { createLogger } from '@raven/controller-kit';
import { PresharedKey } from '../src/psk.ts';

const dir = mkdtempSync(join(tmpdir(), 'raven-psk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger('test', { level: 'silent' });

describe('pskFingerprint', () => {
  it.each([
    ['the same PSK, the same fingerprint', 'alpha', 'alpha', true],
    ['another PSK, another fingerprint', 'alpha', 'alphb', false],
    ['a trailing newline is another PSK', 'alpha', 'alpha\n', false],
  ])('%s', (_what, a, b, same) => {
    expect(pskFingerprint(a)).toMatch(/^[0-9a-f]{16}$/);
    expect(pskFingerprint(a) === pskFingerprint(b)).toBe(same);
  });

  it('is not part of the WireGuard key, which is the PSK\'s sha256 (known answer for "abc")', () => {
    expect(wireguardPresharedKey('abc')).toBe('ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=');
    expect(Buffer.from(wireguardPresharedKey('abc'), 'base64').toString('hex')).not.toContain(pskFingerprint('abc'));
  });
});

describe('PresharedKey from a file (--psk-file)', () => {
  it('reads the file, follows changes, keeps the key when the file goes, and clears it when the file is empty', async () => {
    const path = join(dir, 'vpn-connection-psk');
    writeFileSync(path, 'first-psk');
    const psk = new PresharedKey({ kind: 'file', path }, log);
    expect(await psk.refresh()).toBe(true);
    expect(psk.value).toBe('first-psk');
    expect(psk.wireguardKey).toBe(wireguardPresharedKey('first-psk'));
    expect(psk.describe()).toEqual({ source: 'file', fingerprint: pskFingerprint('first-psk') });
    expect(await psk.refresh()).toBe(false);

    writeFileSync(path, 'second-psk');
    expect(await psk.refresh()).toBe(true);
    expect(psk.describe().fingerprint).toBe(pskFingerprint('second-psk'));

    rmSync(path);
    expect(await psk.refresh()).toBe(false);
    expect(psk.value).toBe('second-psk');
    expect(psk.describe()).toMatchObject({ source: 'file', fingerprint: pskFingerprint('second-psk'), readError: expect.stringContaining('ENOENT') });

    writeFileSync(path, '');
    expect(await psk.refresh()).toBe(true);
    expect(psk.value).toBeUndefined();
    expect(psk.describe()).toEqual({ source: 'file' });
  });
});
