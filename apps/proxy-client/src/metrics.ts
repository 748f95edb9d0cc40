import { Counter, Gauge, type Registry } from 'prom-client';
import type { ServerConnections } from './servers.ts';

const P = 'raven_proxy_client';

/** Serving state and dial results, which the app sets. */
export function servingMetrics(registry: Registry): { active: Gauge; dials: Counter<'result'> } {
  return {
    active: new Gauge({ name: `${P}_active`, help: '1 while this client serves its domain', registers: [registry] }),
    dials: new Counter({ name: `${P}_dials_total`, help: 'Dial requests from servers, by result', labelNames: ['result'], registers: [registry] }),
  };
}

/** Tunnels, streams and bytes, read from the connections at scrape time. */
export function exportConnectionMetrics(registry: Registry, connections: Pick<ServerConnections, 'connectedServers' | 'stats'>): void {
  const registers = [registry];
  new Gauge({ name: `${P}_servers_connected`, help: 'Tunnels held to proxy-server replicas', registers, collect() { this.set(connections.connectedServers()); } });
  new Gauge({ name: `${P}_streams_active`, help: 'Connections open to targets for servers', registers, collect() { this.set(connections.stats().streams); } });
  new Counter({
    name: `${P}_bytes_total`, help: 'Bytes relayed between servers and targets', labelNames: ['direction'], registers,
    collect() {
      const s = connections.stats();
      this.reset();
      this.inc({ direction: 'to_server' }, s.bytesToServers);
      this.inc({ direction: 'from_server' }, s.bytesFromServers);
    },
  });
}
