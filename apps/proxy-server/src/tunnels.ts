import type { Http2SecureServer } from 'node:http2';
import type { Logger } from '@raven/controller-kit';
import {
  DialError, GrpcStatus, TunnelServer, serveAgentService,
  type AgentAdmission, type AgentServiceHandle, type AgentTags, type TunnelServerStats, type TunnelStream,
} from '@raven/tunnel-protocol';
import { AdmissionError, admitClient, stillServes, type AdmittedClient } from './admission.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ClusterView, DomainKey } from './cluster-view.ts';

/** Admission tags each client's streams with the domain it serves; dials select by it. */
const DOMAIN_TAG = 'domain:';
const domainTag = (domain: DomainKey) => `${DOMAIN_TAG}${domain}`;
const domainOfTags = (tags: readonly string[]): DomainKey | undefined => tags.find((t) => t.startsWith(DOMAIN_TAG))?.slice(DOMAIN_TAG.length);

export interface TunnelHubOptions {
  serverId: string;
  serverCount: number;
  view: ClusterView;
  log: Logger;
  metrics: ProxyMetrics;
  dialTimeoutMs: number;
  /** A dial for a domain with no connected client waits this long for one (failover, reconnects) before failing. */
  clientWaitMs: number;
}

/**
 * The tunnel port's AgentService. While this replica is an active proxy endpoint, a TunnelServer admits
 * proxy-clients (see admitClient) and dials through them by domain; on standby every Connect is refused with
 * UNAVAILABLE, so clients only hold tunnels to active servers. Each activation gets a fresh TunnelServer, and
 * deactivation closes it, which sends every client to the servers that are active now. The TunnelServer's index is
 * the one registry of admitted clients: admission tags each stream with its domain.
 */
export class TunnelHub {
  private server: TunnelServer | undefined;
  private readonly retired: TunnelServerStats[] = [];
  /** Dials waiting for a client of their domain to connect (a server just activated, a client reconnecting). */
  private readonly waiters = new Map<DomainKey, Set<() => void>>();

  constructor(private readonly opts: TunnelHubOptions) {}

  get active(): boolean {
    return this.server !== undefined;
  }

  attach(http2: Http2SecureServer): AgentServiceHandle {
    return serveAgentService(http2, (call) => {
      if (this.server) return this.server.handleConnect(call);
      this.opts.metrics.errors.inc({ reason: 'standby' });
      call.finish(GrpcStatus.UNAVAILABLE, 'raven proxy-server is on standby (not an elected proxy endpoint)');
    });
  }

  activate(): void {
    if (this.server) return;
    const { log, metrics } = this.opts;
    const server = new TunnelServer({
      serverId: this.opts.serverId,
      serverCount: this.opts.serverCount,
      dialTimeoutMs: this.opts.dialTimeoutMs,
      authorize: (agent) => this.authorize(agent),
      logger: log,
    });
    server.on('agentConnected', (agent) => {
      if (this.server !== server) return;
      metrics.clients.set(server.stats().agents);
      const domain = domainOfTags(agent.tags);
      if (domain !== undefined) for (const wake of [...(this.waiters.get(domain) ?? [])]) wake();
    });
    server.on('agentDisconnected', () => {
      if (this.server === server) metrics.clients.set(server.stats().agents);
    });
    server.on('agentRejected', ({ agentId, peer, error }) => {
      metrics.errors.inc({ reason: 'client-rejected' });
      log.warn({ agentId, peer, err: error.message }, 'proxy-client refused');
    });
    server.on('dialSucceeded', ({ latencyMs }) => metrics.dialSeconds.observe({ path: 'tunnel', result: 'ok' }, latencyMs / 1000));
    server.on('dialFailed', ({ error }) => metrics.dialSeconds.observe({ path: 'tunnel', result: error.reason }, 0));
    this.server = server;
    log.info('tunnel server active: admitting proxy-clients');
  }

  deactivate(): void {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.retired.push(server.stats());
    server.close();
    this.opts.metrics.clients.set(0);
    this.opts.log.info('tunnel server on standby: proxy-clients disconnected');
  }

  /** Byte counters over every activation, for the metrics. */
  bytes(): { toTargets: number; fromTargets: number } {
    const all = [...this.retired, ...(this.server ? [this.server.stats()] : [])];
    return { toTargets: all.reduce((s, x) => s + x.bytesToAgents, 0), fromTargets: all.reduce((s, x) => s + x.bytesFromAgents, 0) };
  }

  openStreams(): number {
    return this.server?.stats().openStreams ?? 0;
  }

  hasClientFor(domain: DomainKey): boolean {
    return (this.server?.agentsTagged(domainTag(domain)).length ?? 0) > 0;
  }

  /** The clients of `domain` that still serve it, the most recently connected first. */
  private clientsOf(server: TunnelServer, domain: DomainKey): AdmittedClient[] {
    const latest = new Map<string, number>();
    for (const a of server.agentsTagged(domainTag(domain))) latest.set(a.agentId, Math.max(latest.get(a.agentId) ?? 0, a.connectedAt.getTime()));
    return [...latest]
      .sort(([, a], [, b]) => b - a)
      .map(([node]) => ({ node, domain }))
      .filter((c) => stillServes(c, this.opts.view));
  }

  /**
   * Re-checks every connected client against the current view (call it on every change): a client whose node no
   * longer serves the domain it was admitted for (it lost the election, left the Gateway, was deleted) is cut off.
   */
  recheck(): void {
    const server = this.server;
    if (!server) return;
    const revoked = new Set<string>();
    for (const agent of server.agents()) {
      const client = { node: agent.agentId, domain: domainOfTags(agent.tags) ?? '' };
      if (revoked.has(client.node) || stillServes(client, this.opts.view)) continue;
      revoked.add(client.node);
      this.opts.metrics.errors.inc({ reason: 'client-revoked' });
      this.opts.log.warn({ client: client.node, domain: client.domain }, 'proxy-client no longer serves its domain: disconnecting it');
      server.disconnect(client.node, `proxy-client of node ${client.node} no longer serves ${client.domain}`);
    }
    this.opts.metrics.clients.set(server.stats().agents);
  }

  /**
   * Opens a TCP connection to `address` through a proxy-client of `domain`: the most recently connected first,
   * then the others if it is gone. Each candidate must still serve the domain now (stillServes), not only when it
   * was admitted.
   */
  async dial(domain: DomainKey, address: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<TunnelStream> {
    if (!this.server) throw new DialError('no-agent', 'this proxy-server is on standby');
    if (!this.hasClientFor(domain)) await this.clientConnected(domain, Math.min(options.timeoutMs ?? this.opts.dialTimeoutMs, this.opts.clientWaitMs));
    const server = this.server;
    if (!server) throw new DialError('no-agent', 'this proxy-server is on standby');
    const candidates = this.clientsOf(server, domain);
    if (candidates.length === 0) throw new DialError('no-agent', `no proxy-client connected for domain ${domain}`);
    let lastError: unknown;
    for (const client of candidates) {
      try {
        return await server.dial({ agentId: client.node }, address, { timeoutMs: options.timeoutMs ?? this.opts.dialTimeoutMs, signal: options.signal });
      } catch (err) {
        lastError = err;
        if (!(err instanceof DialError) || (err.reason !== 'no-agent' && err.reason !== 'agent-lost')) throw err;
      }
    }
    throw lastError;
  }

  /** Resolves when a client of `domain` registers, or after `ms`. */
  private clientConnected(domain: DomainKey, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(domain);
      if (!set) this.waiters.set(domain, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiters.get(domain) === set) this.waiters.delete(domain);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
    });
  }

  private authorize(agent: AgentAdmission): AgentTags {
    try {
      const admitted = admitClient(agent.peerCertificate, agent.identifiers, this.opts.view);
      // Dials pick clients by agent ID, so a client must not be able to take another node's ID.
      if (agent.agentId !== admitted.node) throw new AdmissionError('bad-identity', `agentID ${JSON.stringify(agent.agentId)} must equal the certificate's node ${admitted.node}`);
      this.opts.log.info({ client: admitted.node, domain: admitted.domain, peer: agent.peer }, 'proxy-client admitted');
      return { tags: [domainTag(admitted.domain)] };
    } catch (err) {
      const reason = err instanceof AdmissionError ? err.reason : 'error';
      this.opts.log.warn({ agentId: agent.agentId, peer: agent.peer, reason, identifiers: agent.identifiers, err: (err as Error).message }, 'proxy-client refused');
      throw err;
    }
  }
}
