import { Duplex } from 'node:stream';
import type { Packet } from './packet.ts';

/** Largest DATA payload we send; upstream peers accept gRPC messages up to 4 MiB. */
export const MAX_DATA_CHUNK = 64 * 1024;

/**
 * One Connect stream (a grpc-js object-mode Duplex of packets) shared by many tunnelled
 * connections, with backpressure in both directions:
 *  - outbound: once the stream's write buffer is full (`congested`), connections stop producing
 *    DATA and park a resume callback; on 'drain' the callbacks run in FIFO order, each one only
 *    while the stream has room, so waking thousands of connections cannot overfill the buffer;
 *  - inbound: a connection whose consumer is full `hold`s the stream, which stops reading packets
 *    (and so, through HTTP/2 flow control, stops the peer) until every holder has `release`d it.
 *    The protocol has no per-connection window, so a stalled consumer stalls its whole tunnel,
 *    exactly as in upstream konnectivity; the alternative is unbounded buffering.
 * Control packets ignore congestion: they are few and small, and their senders cannot wait.
 */
export class PacketLink {
  private readonly writeWaiters = new Set<() => void>();
  private readonly holders = new Set<object>();
  private closed = false;

  private readonly call: Duplex;

  /** `call` is a grpc-js Connect stream; their declared types hide that they are Duplexes. */
  constructor(call: object) {
    if (!(call instanceof Duplex)) throw new TypeError('PacketLink needs a Duplex stream');
    this.call = call;
    call.on('drain', this.onDrain);
  }

  get congested(): boolean {
    return this.call.writableNeedDrain;
  }

  get open(): boolean {
    return !this.closed;
  }

  /** Queues a packet; a packet sent on a closed link is dropped. Returns false once congested. */
  send(packet: Packet): boolean {
    if (this.closed || this.call.writableEnded || this.call.destroyed) return false;
    return this.call.write(packet);
  }

  /** Calls `resume` after the next drain; only meaningful while `congested`. Idempotent per callback. */
  whenWritable(resume: () => void): void {
    if (!this.closed) this.writeWaiters.add(resume);
  }

  cancelWhenWritable(resume: () => void): void {
    this.writeWaiters.delete(resume);
  }

  hold(holder: object): void {
    if (this.closed || this.holders.has(holder)) return;
    this.holders.add(holder);
    if (this.holders.size === 1) this.call.pause();
  }

  release(holder: object): void {
    if (!this.holders.delete(holder) || this.holders.size > 0 || this.closed) return;
    this.call.resume();
  }

  /** Forgets waiters and holders; the caller ends or cancels the call itself. */
  close(): void {
    this.closed = true;
    this.writeWaiters.clear();
    this.holders.clear();
    this.call.off('drain', this.onDrain);
  }

  private readonly onDrain = (): void => {
    for (const resume of this.writeWaiters) {
      if (this.closed || this.call.writableNeedDrain) return;
      this.writeWaiters.delete(resume);
      resume();
    }
  };
}
