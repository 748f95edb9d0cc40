import { EventEmitter } from 'node:events';
import { AgentTunnel, type AgentTunnelOptions } from './agent.ts';
import { silentLogger, type Logger } from './logger.ts';

export interface AgentTunnelSetOptions extends AgentTunnelOptions {
  /** Pause between connection attempts while all is well (upstream default 1 s). */
  syncIntervalMs?: number;
  /** Ceiling of the exponential backoff after failed attempts (upstream default 10 s). */
  syncIntervalCapMs?: number;
  /** Keep probing for new replicas even with serverCount tunnels up (upstream --sync-forever). */
  syncForever?: boolean;
}

export interface AgentTunnelSetEvents {
  connected: [tunnel: AgentTunnel];
  disconnected: [tunnel: AgentTunnel, error: Error | undefined];
  connectFailed: [error: Error];
}

const BACKOFF_FACTOR = 1.5;
const JITTER = 0.1;

/**
 * Holds one tunnel to every proxy-server replica behind one address. Each attempt opens a fresh
 * HTTP/2 connection, which the load balancer places on some replica; the replica's serverID tells
 * duplicates apart and its serverCount says how many distinct replicas to collect. Lost tunnels
 * close their connections and are replaced; failures back off exponentially with jitter.
 */
export class AgentTunnelSet extends EventEmitter<AgentTunnelSetEvents> {
  private readonly tunnelsByServer = new Map<string, AgentTunnel>();
  private readonly log: Logger;
  private readonly syncIntervalMs: number;
  private readonly syncIntervalCapMs: number;
  private lastServerCount = 0;
  private running = false;
  private draining = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: AgentTunnelSetOptions) {
    super();
    this.log = options.logger ?? silentLogger;
    this.syncIntervalMs = options.syncIntervalMs ?? 1_000;
    this.syncIntervalCapMs = options.syncIntervalCapMs ?? 10_000;
  }

  get tunnels(): ReadonlyMap<string, AgentTunnel> {
    return this.tunnelsByServer;
  }

  /** The replica count to reach: the serverCount of the last newly reached replica, at least 1. */
  get serverCount(): number {
    return Math.max(1, this.lastServerCount);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.sync();
  }

  /** Sends DRAIN on every tunnel, present and future: this agent is going away. */
  drain(): void {
    this.draining = true;
    for (const tunnel of this.tunnelsByServer.values()) tunnel.drain();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    for (const tunnel of [...this.tunnelsByServer.values()]) tunnel.close();
  }

  private async sync(): Promise<void> {
    let backoffMs = this.syncIntervalMs;
    while (this.running) {
      let delayMs = this.syncIntervalMs;
      if (this.options.syncForever || this.tunnelsByServer.size < this.serverCount) {
        try {
          const added = await this.connectOnce();
          backoffMs = this.syncIntervalMs;
          // Still short of replicas after reaching a new one: try again at once.
          if (added && this.tunnelsByServer.size < this.serverCount) delayMs = 0;
        } catch (error) {
          const err = error instanceof Error ? error : new Error(String(error));
          this.log.warn({ err, address: this.options.address, retryInMs: Math.round(backoffMs) }, 'cannot connect to proxy server');
          this.emit('connectFailed', err);
          delayMs = backoffMs;
          backoffMs = Math.min(backoffMs * BACKOFF_FACTOR, this.syncIntervalCapMs);
        }
      }
      if (delayMs > 0) await this.sleep(delayMs * (1 + Math.random() * JITTER));
    }
  }

  /** Returns whether the attempt reached a replica we had no tunnel to. */
  private async connectOnce(): Promise<boolean> {
    const tunnel = await AgentTunnel.connect(this.options);
    if (!this.running || this.tunnelsByServer.has(tunnel.serverId)) {
      this.log.debug({ serverId: tunnel.serverId }, 'reached a replica we already hold; closing the duplicate');
      tunnel.close();
      return false;
    }
    this.tunnelsByServer.set(tunnel.serverId, tunnel);
    this.lastServerCount = tunnel.serverCount;
    if (this.draining) tunnel.drain();
    tunnel.once('closed', (error) => {
      if (this.tunnelsByServer.get(tunnel.serverId) === tunnel) this.tunnelsByServer.delete(tunnel.serverId);
      this.emit('disconnected', tunnel, error);
      this.wake?.();
    });
    this.log.info({ serverId: tunnel.serverId, serverCount: tunnel.serverCount, held: this.tunnelsByServer.size }, 'connected to proxy server replica');
    this.emit('connected', tunnel);
    return true;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
