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
  }, 60_000); // the first import of @kubernetes/client-node takes seconds on a loaded machine

  it('merges a KUBECONFIG list as kubectl does: the first file to name something wins, missing files are skipped', async () => {
    const sub = mkdtempSync(join(dir, 'merge-'));
    writeFileSync(join(sub, 'token-a'), 'from-a\n');
    const a = join(sub, 'a.yaml');
    const b = join(sub, 'b.yaml');
    // a: current context and a user with a relative tokenFile; b: the cluster (relative CA file) and a shadowed user.
    writeFileSync(a, stringify({ 'current-context': 'c', users: [{ name: 'u', user: { tokenFile: 'token-a' } }], contexts: [{ name: 'c', context: { cluster: 'cl', user: 'u' } }] }));
    writeFileSync(join(sub, 'ca.pem'), 'CA FROM FILE');
    writeFileSync(b, stringify({ 'current-context': 'other', clusters: [{ name: 'cl', cluster: { server: 'https://198.18.0.2:6443', 'certificate-authority': 'ca.pem' } }], users: [{ name: 'u', user: { token: 'from-b' } }] }));
    const previous = process.env.KUBECONFIG;
    process.env.KUBECONFIG = [join(sub, 'missing.yaml'), a, b].join(':');
    const cwd = process.cwd();
    process.chdir(tmpdir()); // relative paths resolve against the file, not the working directory
    try {
      const creds = await loadCredentials();
      expect(creds.server.href).toBe('https://198.18.0.2:6443/');
      expect(creds.caPem).toBe('CA FROM FILE');
      expect(await creds.headers()).toEqual({ Authorization: 'Bearer from-a' });
    } finally {
      process.chdir(cwd);
      if (previous === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = previous;
    }
  });

  it('refuses a cluster with proxy-url instead of ignoring it', async () => {
    const path = join(dir, 'proxied.yaml');
    writeFileSync(path, stringify({
      'current-context': 'c', clusters: [{ name: 'cl', cluster: { server: 'https://198.18.0.1:6443', 'proxy-url': 'http://198.18.0.9:3128' } }],
      users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'c', context: { cluster: 'cl', user: 'u' } }],
    }));
    await expect(loadCredentials(path)).rejects.toThrow(/sets proxy-url/);
  });

  it('names the file when a kubeconfig is malformed', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'clusters: 7\n');
    await expect(loadCredentials(path)).rejects.toThrow(/bad.yaml is not a valid kubeconfig/);
  });

  it('fails with a ConfigError when no file of a KUBECONFIG list exists', async () => {
    const previous = process.env.KUBECONFIG;
    process.env.KUBECONFIG = [join(dir, 'nope1.yaml'), join(dir, 'nope2.yaml')].join(':');
    try {
      await expect(loadCredentials()).rejects.toThrow(/none of the kubeconfig files/);
    } finally {
      if (previous === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = previous;
    }
  });

  it('fails with a ConfigError for a missing file', async () => {
    await expect(loadCredentials(join(dir, 'missing.yaml'))).rejects.toBeInstanceOf(ConfigError);
  });
});
