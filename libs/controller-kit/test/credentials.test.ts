import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, loadCredentials } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'raven-creds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(user: Record<string, unknown>, name = 'k'): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'cl', cluster: { server: 'https://198.18.0.1:6443', 'certificate-authority-data': b64('CA PEM') } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'cl', user: 'u' } }],
  }));
  return path;
}

describe('loadCredentials', () => {
  it('reads client certificates and the cluster CA directly', async () => {
    const creds = await loadCredentials(kubeconfig({ 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') }));
    expect(creds.server.href).toBe('https://198.18.0.1:6443/');
    expect(creds.tls).toMatchObject({ ca: 'CA PEM', cert: 'CERT', key: 'KEY' });
    expect(creds.caPem).toBe('CA PEM');
    expect(await creds.headers()).toEqual({});
  });

  it('re-reads a token file on every refresh (rotated ServiceAccount tokens)', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'one\n');
    const creds = await loadCredentials(kubeconfig({ tokenFile }, 'tf'));
    expect(await creds.headers()).toEqual({ Authorization: 'Bearer one' });
    writeFileSync(tokenFile, 'two\n');
    expect(await creds.headers()).toEqual({ Authorization: 'Bearer two' });
  });

  it('hands other user shapes (basic auth, exec plugins) to @kubernetes/client-node', async () => {
    const creds = await loadCredentials(kubeconfig({ username: 'admin', password: 'secret' }, 'basic'));
    expect(await creds.headers()).toEqual({ Authorization: `Basic ${b64('admin:secret')}` });
  });

  it('fails with a ConfigError for a missing file', async () => {
    await expect(loadCredentials(join(dir, 'missing.yaml'))).rejects.toBeInstanceOf(ConfigError);
  });
});
