import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '@raven/controller-kit';
import { reviewConversion } from './conversion.ts';
import type { ServingCertificate } from './serving-cert.ts';

const MAX_BODY_BYTES = 32 << 20;

/** The HTTPS endpoint the apiserver calls for Gateway conversions. Certificates can be swapped while serving. */
export class WebhookServer {
  private server: Server;
  private readonly conversions: Counter<'result'>;
  private readonly latency: Histogram;

  constructor(cert: ServingCertificate, private readonly log: Logger, registry: Registry) {
    this.conversions = new Counter({ name: 'raven_pickup_conversions_total', help: 'ConversionReviews answered, by result', labelNames: ['result'], registers: [registry] });
    this.latency = new Histogram({ name: 'raven_pickup_conversion_duration_seconds', help: 'Time to answer a ConversionReview', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1], registers: [registry] });
    this.server = createServer({ cert: cert.certPem, key: cert.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/convert') {
        res.writeHead(404).end();
        return;
      }
      const stop = this.latency.startTimer();
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) req.destroy();
        else chunks.push(chunk);
      });
      req.on('end', () => {
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
        stop();
      });
    });
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
