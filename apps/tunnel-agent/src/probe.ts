import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';

/** RTT statistics of one peer over a sliding window of probes. */
export interface PeerHealth {
  reachable: boolean;
  lastRttMs?: number;
  minRttMs?: number;
  avgRttMs?: number;
  maxRttMs?: number;
  lastError?: string;
}

const MAGIC = Buffer.from('RVNP');
const WINDOW = 20;

/**
 * Gateway-to-gateway reachability and RTT, measured through the tunnel: a UDP echo responder on every gateway,
 * and probes sent to each peer gateway's private IP (which the data path always routes through the tunnel).
 */
export class Prober {
  private socket?: Socket;
  private readonly pending = new Map<string, { sentAt: bigint; resolve: (rtt: number | undefined) => void }>();
  private readonly samples = new Map<string, number[]>();
  private readonly failures = new Map<string, number>();
  private readonly lastReply = new Map<string, number>();

  constructor(private readonly port: number, private readonly timeoutMs = 1_000) {}

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (msg, rinfo) => {
      if (msg.length < 13 || !msg.subarray(0, 4).equals(MAGIC)) return;
      if (msg[4] === 0) {
        msg[4] = 1; // request → reply, same payload
        socket.send(msg, rinfo.port, rinfo.address);
        return;
      }
      const id = msg.subarray(5, 13).toString('hex');
      const entry = this.pending.get(id);
      if (entry) {
        this.pending.delete(id);
        entry.resolve(Number(process.hrtime.bigint() - entry.sentAt) / 1e6);
      }
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.port, resolve);
    });
    socket.on('error', () => undefined);
    this.socket = socket;
  }

  /** One probe to `address`; records the sample under `peer`. */
  async probe(peer: string, address: string, timeoutMs = this.timeoutMs): Promise<void> {
    if (!this.socket) return;
    const id = randomBytes(8);
    const msg = Buffer.concat([MAGIC, Buffer.from([0]), id]);
    const rtt = await new Promise<number | undefined>((resolve) => {
      const key = id.toString('hex');
      this.pending.set(key, { sentAt: process.hrtime.bigint(), resolve });
      setTimeout(() => {
        if (this.pending.delete(key)) resolve(undefined);
      }, timeoutMs).unref();
      this.socket!.send(msg, this.port, address, (err) => {
        if (err && this.pending.delete(key)) resolve(undefined);
      });
    });
    if (rtt === undefined) {
      this.failures.set(peer, (this.failures.get(peer) ?? 0) + 1);
      return;
    }
    this.failures.set(peer, 0);
    this.lastReply.set(peer, Date.now());
    const window = [...(this.samples.get(peer) ?? []), rtt].slice(-WINDOW);
    this.samples.set(peer, window);
  }

  health(peer: string): PeerHealth {
    const window = this.samples.get(peer) ?? [];
    const failing = (this.failures.get(peer) ?? 0) >= 3 || window.length === 0;
    if (failing) return { reachable: false, lastError: window.length === 0 ? 'no reply yet' : 'no reply to the last 3 probes' };
    return {
      reachable: true,
      lastRttMs: window.at(-1),
      minRttMs: Math.min(...window),
      avgRttMs: window.reduce((a, b) => a + b, 0) / window.length,
      maxRttMs: Math.max(...window),
    };
  }

  /** When a probe recorded under `peer` was last answered (epoch ms). */
  lastReplyAt(peer: string): number | undefined {
    return this.lastReply.get(peer);
  }

  forgetAllBut(peers: ReadonlySet<string>): void {
    for (const key of [...this.samples.keys(), ...this.failures.keys(), ...this.lastReply.keys()]) {
      if (!peers.has(key)) {
        this.samples.delete(key);
        this.failures.delete(key);
        this.lastReply.delete(key);
      }
    }
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
