import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { safeSegment, tarGz } from '../src/archive.ts';
import { bundleEntries } from '../src/gather-command.ts';
import { REDACTED, SecretCollector, redactObject, scrubText } from '../src/redact.ts';

const PSK = 'Zm9vYmFyLXZlcnktc2VjcmV0LXBzay12YWx1ZQ-raw';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const CA_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';
const OTHER_KEY = CA_KEY.replace(/MIG/, 'XYZ');

function extract(archive: Buffer): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'ravenctl-tar-'));
  writeFileSync(join(dir, 'a.tar.gz'), archive);
  execFileSync('tar', ['-xzf', 'a.tar.gz', '-C', dir], { cwd: dir });
  const files: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p, `${prefix}${name}/`);
      else if (`${prefix}${name}` !== 'a.tar.gz') files[`${prefix}${name}`] = readFileSync(p, 'utf8');
    }
  };
  walk(dir, '');
  return files;
}

describe('tar.gz', () => {
  it('round-trips through the system tar, including long paths and empty files', () => {
    const long = `root/${'d'.repeat(90)}/${'f'.repeat(95)}.log`;
    const files = extract(tarGz([{ path: 'root/a.txt', content: 'hello\n' }, { path: 'root/empty', content: '' }, { path: long, content: 'x'.repeat(1500) }, { path: 'root/ü.txt', content: 'ünï' }]));
    expect(files).toEqual({ 'root/a.txt': 'hello\n', 'root/empty': '', [long]: 'x'.repeat(1500), 'root/ü.txt': 'ünï' });
  });

  it('refuses a path it cannot store', () => {
    expect(() => tarGz([{ path: 'x'.repeat(300), content: '' }])).toThrow(/too long/);
  });

  it.each([
    ['raven-tunnel-agent-x7', 'raven-tunnel-agent-x7'],
    ['../../etc/passwd', '__.._etc_passwd'],
    ['..', '_'],
    ['a/b', 'a_b'],
    ['', '_'],
  ])('safeSegment(%j) = %j', (input, want) => expect(safeSegment(input)).toBe(want));
});

describe('redaction', () => {
  it('replaces Secret values (data and stringData) and remembers them', () => {
    const secrets = new SecretCollector();
    const out = redactObject({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'raven-agent-secret', managedFields: [{}], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"data":{"vpn-connection-psk":"${b64(PSK)}"}}` } }, data: { 'vpn-connection-psk': b64(PSK) }, stringData: { other: 'plain-secret-value' } }, secrets);
    expect(out).toEqual({
      apiVersion: 'v1', kind: 'Secret',
      metadata: { name: 'raven-agent-secret', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': REDACTED } },
      data: { 'vpn-connection-psk': `${REDACTED} (${PSK.length} bytes)` }, stringData: { other: `${REDACTED} (18 bytes)` },
    });
    expect(secrets.values).toContain(PSK);
    expect(secrets.values).toContain('plain-secret-value');
  });

  it('keeps ordinary ConfigMap keys, redacts sensitive ones and sensitive env values', () => {
    const secrets = new SecretCollector();
    expect(redactObject({ kind: 'ConfigMap', metadata: { name: 'raven-cfg' }, data: { 'enable-l3-tunnel': 'true', 'vpn-connection-psk': 'oops-a-psk' } }, secrets))
      .toMatchObject({ data: { 'enable-l3-tunnel': 'true', 'vpn-connection-psk': `${REDACTED} (10 bytes)` } });
    expect(redactObject({ kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', env: [{ name: 'NODE_NAME', value: 'n1' }, { name: 'API_TOKEN', value: 'tok-123456' }] }] } }, secrets))
      .toMatchObject({ spec: { containers: [{ env: [{ name: 'NODE_NAME', value: 'n1' }, { name: 'API_TOKEN', value: REDACTED }] }] } });
  });

  it('scrubs private keys, bearer tokens, JWTs and every remembered value (raw, base64, JSON-escaped) from text', () => {
    const secrets = new SecretCollector();
    secrets.add(PSK);
    secrets.add('a"quoted\\secret');
    secrets.add('short');
    const text = [
      '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----',
      'Authorization: Bearer abc.def-ghi',
      'token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
      `psk=${PSK} b64=${b64(PSK)} json="a\\"quoted\\\\secret"`,
      'short stays',
    ].join('\n');
    const out = scrubText(text, secrets);
    expect(out).toBe([
      `-----${REDACTED} PRIVATE KEY-----`, `Authorization: Bearer ${REDACTED}`, `token ${REDACTED}`, `psk=${REDACTED} b64=${REDACTED} json="${REDACTED}"`, 'short stays',
    ].join('\n'));
  });

  it('a bundle never contains a Secret value, wherever it leaked', () => {
    const collected = {
      files: [
        // As the API lists them: items without kind.
        { path: 'resources/secrets.yaml', kind: 'Secret', data: [{ metadata: { name: 'raven-agent-secret' }, data: { 'vpn-connection-psk': b64(PSK) } }, { metadata: { name: 'webhook-certs' }, data: { 'tls.key': b64(CA_KEY) } }] },
        { path: 'resources/gateways.yaml', kind: 'Gateway', data: [{ metadata: { name: 'g', annotations: { note: `psk is ${PSK}` } } }] },
        { path: 'resources/lease.yaml', kind: 'Lease', data: { metadata: { name: 'l' }, spec: { holderIdentity: `key ${b64(OTHER_KEY)}` } } },
      ],
      texts: [{ path: 'logs/p/c.log', text: `{"msg":"loaded psk ${PSK}"}\n` }],
      errors: [],
    };
    const files = extract(tarGz(bundleEntries('bundle', collected, [{ path: 'show.json', text: `{"x":"${b64(PSK)}"}` }])));
    expect(Object.keys(files).sort()).toEqual(['bundle/errors.txt', 'bundle/logs/p/c.log', 'bundle/resources/gateways.yaml', 'bundle/resources/lease.yaml', 'bundle/resources/secrets.yaml', 'bundle/show.json']);
    const all = Object.values(files).join('\n');
    expect(files['bundle/resources/secrets.yaml']).toContain(`tls.key: ${REDACTED} (${CA_KEY.length} bytes)`);
    expect(files['bundle/resources/lease.yaml']).toContain(`holderIdentity: key ${REDACTED}`);
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain(b64(CA_KEY).slice(0, 40));
    expect(all).not.toContain(b64(OTHER_KEY).slice(0, 40));
    expect(all).not.toContain(PSK);
    expect(all).not.toContain(b64(PSK));
    expect(files['bundle/logs/p/c.log']).toBe(`{"msg":"loaded psk ${REDACTED}"}\n`);
    expect(files['bundle/resources/gateways.yaml']).toContain(`note: psk is ${REDACTED}`);
    expect(gunzipSync(tarGz([{ path: 'a', content: PSK }])).includes(PSK)).toBe(true);
  });
});
