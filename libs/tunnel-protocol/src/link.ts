import type { Duplex } from 'node:stream';
import { decodePacket, encodePacketFrame } from './codec.ts';
import { ProtocolError } from './errors.ts';
import { MessageDeframer } from './grpc.ts';
import type { Packet, ReceivedPacket } from './packet.ts';

/** Largest DATA payload we send; upstream peers accept gRPC messages up to 4 MiB. */
export const MAX_DATA_CHUNK = 64 * 1024;

/**
 * Bytes a link queues before it counts as congested. An HTTP/2 stream's own high-water mark (16 KiB) is a
 * quarter of one DATA chunk and would stall the pipeline after every chunk; 1 MiB is about 7 ms at 150 MB/s.
 */
const LINK_BUFFER_BYTES = 1024 * 1024;
/**
 * Control packets (CLOSE_REQ, DIAL_CLS, ...) are queued past congestion, since their senders cannot wait; beyond this
 * many queued bytes the peer is not reading them (for example while flooding DATA for unknown connections), and the
 * link refuses more: its owner ends it.
 */
export const CONTROL_BACKLOG_BYTES = 4 * 1024 * 1024;

/**
 * One Connect stream (an HTTP/2 stream carrying gRPC-framed packets) shared by many tunnelled
 * connections, with backpressure in both directions:
 *  - outbound: once the stream's write buffer holds LINK_BUFFER_BYTES (`congested`), connections stop producing
 *    DATA and park a resume callback; on 'drain' the callbacks run in FIFO order, each one only
 *    while the stream has room, so waking thousands of connections cannot overfill the buffer;
 *  - inbound: a connection whose consumer is full `hold`s the stream, which stops reading packets
 *    (and so, through HTTP/2 flow control, stops the peer) until every holder has `release`d it.
 *    The protocol has no per-connection window, so a stalled consumer stalls its whole tunnel,
 *    exactly as in upstream konnectivity; the alternative is unbounded buffering.
 * Control packets ignore congestion: they are few and small, and their senders cannot wait; `sendControl` bounds them.
 */
export class PacketLink {
  private readonly writeWaiters = new Set<() => void>();
  private readonly holders = new Set<object>();
  private closed = false;
  private corked = false;
  private readonly deframer: MessageDeframer;

  constructor(private readonly call: Duplex, maxMessageBytes?: number) {
    this.deframer = new MessageDeframer(maxMessageBytes);
    call.on('drain', this.onDrain);
  }

  /**
   * Starts reading: every packet goes to `onPacket`; a malformed message stops reading and goes to `onInvalid`
   * (the caller tears the tunnel down).
   */
  start(onPacket: (packet: ReceivedPacket) => void, onInvalid: (error: ProtocolError) => void): void {
    const deliver = (message: Buffer) => onPacket(decodePacket(message));
    this.call.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      try {
        this.deframer.push(chunk, deliver);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.call.pause();
        onInvalid(error);
      }
    });
  }

  get congested(): boolean {
    // 'drain' (which wakes the waiters) follows once the buffer empties, as it passed the stream's own mark on the way.
    return this.call.writableLength >= LINK_BUFFER_BYTES;
  }

  get open(): boolean {
    return !this.closed;
  }

  /** Queues a packet; a packet sent on a closed link is dropped. Returns false once congested. */
  send(packet: Packet): boolean {
    if (this.closed || this.call.writableEnded || this.call.destroyed) return false;
    return this.write(encodePacketFrame(packet));
  }

  /**
   * Queues a control packet whatever the congestion, up to CONTROL_BACKLOG_BYTES queued in all; returns false (and
   * queues nothing) beyond that: the peer does not read, and the caller ends the link.
   */
  sendControl(packet: Packet): boolean {
    if (this.closed || this.call.writableEnded || this.call.destroyed) return true;
    if (this.call.writableLength >= CONTROL_BACKLOG_BYTES) return false;
    this.write(encodePacketFrame(packet));
    return true;
  }

  /**
   * Frames written during one event-loop turn leave together: the stream is corked at the turn's first write and
   * uncorked at setImmediate, after the turn's I/O callbacks, so N packets cost one writev into HTTP/2 instead of N
   * writes (each with its own write request, callbacks and timer refresh). Corked bytes count in writableLength, so
   * `congested` and the control backlog still bound them.
   */
  private write(frame: Buffer): boolean {
    if (!this.corked) {
      this.corked = true;
      this.call.cork();
      setImmediate(this.uncork);
    }
    return this.call.write(frame);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.call.uncork();
  };

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
      if (this.closed || this.congested) return;
      this.writeWaiters.delete(resume);
      resume();
    }
  };
}
