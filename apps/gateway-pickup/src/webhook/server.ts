import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '@raven/controller-kit';
import { reviewConversion } from './conversion.ts';
import type { ServingCertificate } from './serving-cert.ts';

/**
 * Bounds of one replica. A ConversionReview carries whole Gateways (etcd caps an object at 1.5 MiB), so 4 MiB fits any
 * real one; with at most 4 bodies in flight the webhook holds at most 16 MiB of request bodies, and parsing one (the
 * only synchronous step) stays in the low milliseconds. Slow or idle connections are timed out, and connections are
 * capped, so a flood from anyone who reaches the port costs bounded memory.
 */
export const WEBHOOK_LIMITS = {
  maxBodyBytes: 4 << 20,
  maxInFlight: 4,
  maxConnections: 2048,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 15_000,
  handshakeTimeoutMs: 10_000,
} as const;

/** The HTTPS endpoint the apiserver calls for Gateway conversions. Certificates can be swapped while serving. */
export class WebhookServer {
  private server: Server;
  private readonly conversions: Counter<'result'>;
  private readonly latency: Histogram;

  private inFlight = 0;

  constructor(cert: ServingCertificate, private readonly log: Logger, registry: Registry) {
    this.conversions = new Counter({ name: 'raven_pickup_conversions_total', help: 'ConversionReviews answered, by result', labelNames: ['result'], registers: [registry] });
    this.latency = new Histogram({ name: 'raven_pickup_conversion_duration_seconds', help: 'Time to answer a ConversionReview', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1], registers: [registry] });
    const L = WEBHOOK_LIMITS;
    this.server = createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2', handshakeTimeout: L.handshakeTimeoutMs }, (req, res) => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/convert') {
        res.writeHead(404, { Connection: 'close' }).end();
        return;
      }
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > L.maxBodyBytes) {
        this.conversions.inc({ result: 'too-large' });
        res.writeHead(413, { Connection: 'close' }).end();
        req.destroy();
        return;
      }
      if (this.inFlight >= L.maxInFlight) {
        this.conversions.inc({ result: 'busy' });
        res.writeHead(429, { 'Retry-After': '1', Connection: 'close' }).end();
        req.destroy();
        return;
      }
      this.inFlight++;
      let released = false;
      const release = () => {
        if (!released) this.inFlight--;
        released = true;
      };
      res.on('close', release);
      req.on('error', release);
      const stop = this.latency.startTimer();
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= L.maxBodyBytes) {
          chunks.push(chunk);
          return;
        }
        this.conversions.inc({ result: 'too-large' });
        chunks.length = 0;
        res.writeHead(413, { Connection: 'close' }).end();
        req.destroy();
        release();
      });
      req.on('end', () => {
        if (res.headersSent) return;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        const { review, converted, failure } = reviewConversion(body);
        this.conversions.inc({ result: failure ? 'failure' : 'success' });
        if (failure) this.log.warn({ failure }, 'conversion failed');
        else this.log.debug({ converted }, 'converted');
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(review));
        release();
        stop();
      });
    });
    this.server.maxConnections = L.maxConnections;
    this.server.headersTimeout = L.headersTimeoutMs;
    this.server.requestTimeout = L.requestTimeoutMs;
    this.server.keepAliveTimeout = 5_000;
    this.server.timeout = L.idleTimeoutMs;
  }

  updateCertificate(cert: ServingCertificate): void {
    this.server.setSecureContext({ cert: cert.certPem, key: cert.keyPem });
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, resolve);
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }
}
