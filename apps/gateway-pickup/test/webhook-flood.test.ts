import { connect as tcpConnect, type Socket } from 'node:net';
import { request } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createLogger } from '@raven/controller-kit';
import { createCA, issueCertificate } from '@raven/pki';
import { WEBHOOK_LIMITS, WebhookServer } from '../src/webhook/server.ts';

/**
 * The conversion webhook under a bounded flood from someone who reaches its port (no credentials needed): idle
 * connections, heads sent a byte at a time, oversized bodies, more requests than it runs at once. The apiserver's
 * conversions keep succeeding and memory stays bounded.
 */
let server: WebhookServer;
let port: number;
let caPem: string;
const sockets: Array<Socket | TLSSocket> = [];

beforeAll(async () => {
  const ca = await createCA('flood-ca', 1);
  const leaf = await issueCertificate(ca, { commonName: 'webhook', dnsNames: ['webhook'], ipAddresses: ['127.0.0.1'], usages: ['server'], validityDays: 1 });
  caPem = ca.certPem;
  server = new WebhookServer({ caPem, certPem: leaf.certPem, keyPem: leaf.keyPem }, createLogger('t', { level: 'silent' }), new Registry());
  port = await server.listen(0, '127.0.0.1');
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await server.close();
});

const review = (uid: string) => JSON.stringify({
  apiVersion: 'apiextensions.k8s.io/v1', kind: 'ConversionReview',
  request: { uid, desiredAPIVersion: 'raven.openyurt.io/v1alpha1', objects: [{ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'g' }, spec: { endpoints: [{ nodeName: 'a', type: 'tunnel' }] } }] },
});

function post(body: string | Buffer, headers: Record<string, string | number> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/convert', method: 'POST', ca: caPem, servername: 'webhook', agent: false, headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const converts = async (uid: string) => {
  const res = await post(review(uid));
  expect(res.status).toBe(200);
  expect(JSON.parse(res.text)).toMatchObject({ response: { uid, result: { status: 'Success' } } });
};

describe('the conversion webhook under a flood', () => {
  it('converts while 1,000 idle connections and 50 slow heads are open, and memory stays bounded', async () => {
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 1_000; i++) {
      const s = tcpConnect(port, '127.0.0.1');
      s.on('error', () => undefined);
      sockets.push(s);
    }
    const slow: TLSSocket[] = [];
    for (let i = 0; i < 50; i++) {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: caPem, servername: 'webhook' });
      s.on('error', () => undefined);
      slow.push(s);
      sockets.push(s);
    }
    await Promise.all(slow.map((s) => new Promise((r) => s.once('secureConnect', r))));
    const head = 'POST /convert HTTP/1.1\r\nHost: webhook\r\nX-Padding: ' + 'a'.repeat(200);
    const drip = setInterval(() => {
      const byte = head[Math.floor(Math.random() * head.length)]!;
      for (const s of slow) if (!s.destroyed) s.write(byte);
    }, 20);
    try {
      for (let i = 0; i < 5; i++) await converts(`during-flood-${i}`);
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      expect(rssGrowth).toBeLessThan(200 << 20);
    } finally {
      clearInterval(drip);
    }
  }, 60_000);

  it('refuses an oversized body by its length, and one that grows past the cap while streaming', async () => {
    expect((await post(Buffer.alloc(16), { 'Content-Length': 64 << 20 }).catch(() => ({ status: 413, text: '' }))).status).toBe(413);
    const streamed = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/convert', method: 'POST', ca: caPem, servername: 'webhook', agent: false }, (res) => resolve(res.statusCode ?? 0));
      req.on('error', () => resolve(413));
      const chunk = Buffer.alloc(256 << 10, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent <= WEBHOOK_LIMITS.maxBodyBytes * 2) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(streamed).toBe(413);
    await converts('after-oversized');
  });

  it(`answers 429 beyond ${WEBHOOK_LIMITS.maxInFlight} requests in flight, and converts again once they end`, async () => {
    // Requests whose bodies never finish hold their slots.
    const held = Array.from({ length: WEBHOOK_LIMITS.maxInFlight }, () => {
      const req = request({ host: '127.0.0.1', port, path: '/convert', method: 'POST', ca: caPem, servername: 'webhook', agent: false, headers: { 'Content-Length': 1000 } });
      req.on('error', () => undefined);
      req.write('{');
      return req;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect((await post(review('over-limit'))).status).toBe(429);
    for (const req of held) req.destroy();
    await new Promise((r) => setTimeout(r, 200));
    await converts('after-release');
  });
});
