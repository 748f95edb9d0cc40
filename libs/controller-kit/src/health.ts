import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';

export type Check = () => { ok: boolean; detail?: string };

/**
 * JSON safe to serve whatever strings it carries: besides JSON's own escaping, `<`, `>`, `&` and the JavaScript line
 * separators are escaped too (as Go's encoding/json does), so no client sniffing it as HTML or script can be misled.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `/healthz` (liveness), `/readyz` (readiness: informers synced, leadership state, ...) and `/metrics`
 * (Prometheus text) on one small node:http server. Checks are named, so a failing probe says which one failed.
 */
export class HealthServer {
  readonly registry = new Registry();
  private readonly liveness = new Map<string, Check>();
  private readonly readiness = new Map<string, Check>();
  private readonly json = new Map<string, () => unknown>();
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

  /**
   * A read-only JSON view at `path` (GET and HEAD only; the request's path, query and body are never read into it).
   * `produce` must not change state: it is called per request.
   */
  addJsonEndpoint(path: string, produce: () => unknown): void {
    if (!path.startsWith('/') || ['/healthz', '/livez', '/readyz', '/metrics'].includes(path)) throw new Error(`cannot serve JSON at ${path}`);
    this.json.set(path, produce);
  }

  private serveJson(method: string | undefined, produce: () => unknown, res: ServerResponse): void {
    const headers = { 'Content-Type': 'application/json; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end(safeJson({ error: 'method not allowed' }));
      return;
    }
    let body: string;
    try {
      body = safeJson(produce()) + '\n';
    } catch (err) {
      res.writeHead(500, headers).end(safeJson({ error: (err as Error).message }));
      return;
    }
    res.writeHead(200, headers).end(method === 'HEAD' ? undefined : body);
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
      } else if (path !== undefined && this.json.has(path)) {
        this.serveJson(req.method, this.json.get(path)!, res);
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
