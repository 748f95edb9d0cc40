import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ProxyMetrics {
  active: Gauge;
  clients: Gauge;
  streams: Gauge<'frontend'>;
  requests: Counter<'frontend' | 'code'>;
  bytes: Counter<'direction'>;
  dialSeconds: Histogram<'path' | 'result'>;
  errors: Counter<'reason'>;
}

/** raven_proxy_server_*: connected clients, streams, bytes, dial latency and errors by reason. */
export function proxyMetrics(registry: Registry, bytes: () => { toTargets: number; fromTargets: number }): ProxyMetrics {
  const p = 'raven_proxy_server';
  return {
    active: new Gauge({ name: `${p}_active`, help: '1 while this replica is an elected proxy endpoint of an exposed Gateway', registers: [registry] }),
    clients: new Gauge({ name: `${p}_connected_clients`, help: 'proxy-clients holding a tunnel to this replica', registers: [registry] }),
    streams: new Gauge({ name: `${p}_streams_active`, help: 'Front-end connections open (each relayed to one target), by front end', labelNames: ['frontend'], registers: [registry] }),
    requests: new Counter({ name: `${p}_requests_total`, help: 'Front-end connections by outcome of their first request: code="relayed", or the refusal status', labelNames: ['frontend', 'code'], registers: [registry] }),
    bytes: new Counter({
      name: `${p}_bytes_total`, help: 'Bytes relayed to and from targets (tunnelled and direct)', labelNames: ['direction'], registers: [registry],
      collect() {
        const now = bytes();
        this.reset();
        this.inc({ direction: 'to_target' }, now.toTargets);
        this.inc({ direction: 'from_target' }, now.fromTargets);
      },
    }),
    dialSeconds: new Histogram({
      name: `${p}_dial_duration_seconds`, help: 'Time to open a connection to a target, through a tunnel or directly, by result',
      labelNames: ['path', 'result'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [registry],
    }),
    errors: new Counter({ name: `${p}_errors_total`, help: 'Requests and tunnels refused or failed, by reason', labelNames: ['reason'], registers: [registry] }),
  };
}
