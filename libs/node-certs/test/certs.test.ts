import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createCA, createCsr, issueCertificate } from '@raven/pki';
import {
  CertificateSource, FileCertificateSource, certificateSatisfies, serveCurrentCertificate, inspectCsr, issuedBy, keyMatchesCertificate, viewCertificate, type KeyPair,
} from '../src/index.ts';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'raven-node-certs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A source whose pair the test sets, to drive rotation. */
class SettableSource extends CertificateSource {
  constructor(pair: KeyPair) {
    super('settable');
    this.publish(pair);
  }
  set(pair: KeyPair): void {
    this.publish(pair);
  }
  start(): void {
    // nothing to start: the test sets the pair
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  status() {
    return { ready: true };
  }
}

describe('inspectCsr', () => {
  it('reports the whole subject, every SAN and the proof of possession', async () => {
    const { csrPem } = await createCsr({ commonName: 'system:node:a', organizations: ['system:nodes'], dnsNames: ['a'], ipAddresses: ['10.0.0.1', 'fd00::1'] });
    expect(await inspectCsr(csrPem)).toEqual({
      commonName: 'system:node:a', organizations: ['system:nodes'], otherSubject: [], dnsNames: ['a'], ipAddresses: ['10.0.0.1', 'fd00::1'],
      otherNames: [], otherExtensions: [], signatureValid: true,
    });
    await expect(inspectCsr('not a csr')).rejects.toThrow(/PKCS#10/);
  });
});

describe('certificate helpers', () => {
  it('match keys, issuers and specs', async () => {
    const ca = await createCA('ca');
    const other = await createCA('other');
    const pair = await issueCertificate(ca, { commonName: 'system:node:a', organizations: ['system:nodes'], dnsNames: ['a'], ipAddresses: ['10.0.0.1'], usages: ['server'] });
    expect(keyMatchesCertificate(pair.certPem, pair.keyPem)).toBe(true);
    expect(keyMatchesCertificate(pair.certPem, other.keyPem)).toBe(false);
    expect(issuedBy(pair.certPem, other.certPem + ca.certPem)).toBe(true);
    expect(issuedBy(pair.certPem, other.certPem)).toBe(false);
    const view = viewCertificate(pair.certPem);
    expect(certificateSatisfies(view, { commonName: 'system:node:a', organizations: ['system:nodes'], dnsNames: ['a'], ipAddresses: ['10.0.0.1'] })).toBe(true);
    expect(certificateSatisfies(view, { commonName: 'system:node:a', organizations: ['system:nodes'], dnsNames: ['a'], ipAddresses: ['10.0.0.2'] })).toBe(false);
  });
});

describe('serveCurrentCertificate', () => {
  it('serves mTLS from a source and gives connections after a rotation the new certificate', async () => {
    const ca = await createCA('ca');
    const first = await issueCertificate(ca, { commonName: 'server-1', ipAddresses: ['127.0.0.1'], usages: ['server'] });
    const client = await issueCertificate(ca, { commonName: 'client', usages: ['client'] });
    const serving = new SettableSource(first);
    const server = createTlsServer({ requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => socket.end(String(socket.getPeerCertificate().subject.CN)));
    serveCurrentCertificate(server, serving, { ca: ca.certPem });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const ask = () => new Promise<{ peer: string; serverCn: string }>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: ca.certPem, cert: client.certPem, key: client.keyPem }, () => {
        const serverCn = String(socket.getPeerCertificate().subject.CN);
        let peer = '';
        socket.on('data', (d: Buffer) => (peer += d.toString()));
        socket.on('end', () => resolve({ peer, serverCn }));
      });
      socket.on('error', reject);
    });
    expect(await ask()).toEqual({ peer: 'client', serverCn: 'server-1' });
    serving.set(await issueCertificate(ca, { commonName: 'server-2', ipAddresses: ['127.0.0.1'], usages: ['server'] }));
    expect((await ask()).serverCn).toBe('server-2');
    server.close();
  });
});

describe('FileCertificateSource', () => {
  it('loads mounted files, takes a new matching pair, and ignores a half-written one', async () => {
    const ca = await createCA('ca');
    const [a, b] = [await issueCertificate(ca, { commonName: 'a', usages: ['client'] }), await issueCertificate(ca, { commonName: 'b', usages: ['client'] })];
    const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    writeFileSync(files.cert, a.certPem);
    writeFileSync(files.key, a.keyPem);
    const source = new FileCertificateSource({ log, name: 'mounted', certFile: files.cert, keyFile: files.key, pollMs: 20 });
    const changes: string[] = [];
    source.on('change', (pair) => changes.push(viewCertificate(pair.certPem).commonName));
    source.start();
    expect(source.status()).toMatchObject({ ready: true, subject: 'a' });
    writeFileSync(files.cert, b.certPem); // key not yet replaced: a mismatched pair
    await sleep(100);
    expect(source.current()?.certPem).toBe(a.certPem);
    expect(source.status().lastError).toMatch(/does not match/);
    writeFileSync(files.key, b.keyPem);
    await sleep(100);
    expect(source.status()).toMatchObject({ ready: true, subject: 'b', lastError: undefined });
    expect(changes).toEqual(['a', 'b']);
    await source.stop();
  });
});
