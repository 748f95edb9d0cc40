import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';

export type Check = () => { ok: boolean; detail?: string };

/**
 * `/healthz` (liveness), `/readyz` (readiness: informers synced, leadership state, ...) and `/metrics`
 * (Prometheus text) on one small node:http server. Checks are named, so a failing probe says which one failed.
 */
export class HealthServer {
  readonly registry = new Registry();
  private readonly liveness = new Map<string, Check>();
  private readonly readiness = new Map<string, Check>();
  private server?: Server;

  /** `component` names the app; the default process metrics stay unprefixed (`process_*`, `nodejs_*`) by convention. */
  constructor(readonly component: string) {
    collectDefaultMetrics({ register: this.registry });
  }

  addLivenessCheck(name: string, check: Check): void {
    this.liveness.set(name, check);
  }

  addReadinessCheck(name: string, check: Check): void {
    this.readiness.set(name, check);
  }

  private static run(checks: Map<string, Check>): { ok: boolean; body: string } {
    const lines: string[] = [];
    let ok = true;
    for (const [name, check] of checks) {
      let result: ReturnType<Check>;
      try {
        result = check();
      } catch (err) {
        result = { ok: false, detail: (err as Error).message };
      }
      ok &&= result.ok;
      lines.push(`[${result.ok ? '+' : '-'}]${name} ${result.ok ? 'ok' : 'failed'}${result.detail ? `: ${result.detail}` : ''}`);
    }
    lines.push(ok ? 'ok' : 'check failed');
    return { ok, body: lines.join('\n') + '\n' };
  }

  /** Listens on `port` (0 = any free port). Metrics and probes may share one port or use two servers. */
  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/healthz' || path === '/livez' || path === '/readyz') {
        const { ok, body } = HealthServer.run(path === '/readyz' ? new Map([...this.liveness, ...this.readiness]) : this.liveness);
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
      } else if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(err.message),
        );
      } else {
        res.writeHead(404).end('not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, resolve);
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server.closeAllConnections();
  }
}
