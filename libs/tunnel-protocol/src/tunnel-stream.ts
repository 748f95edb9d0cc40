import { Duplex } from 'node:stream';
import { TunnelStreamError } from './errors.ts';
import { MAX_DATA_CHUNK, type PacketLink } from './link.ts';
import { PacketType } from './packet.ts';

/** What a TunnelStream needs from the agent stream that carries it. */
export interface StreamCarrier {
  readonly link: PacketLink;
  readonly agentId: string;
  /** Drops the connection from the carrier's table (after CLOSE_RSP or tunnel loss). */
  forget(connectId: bigint): void;
  countBytesToAgent(n: number): void;
  countBytesFromAgent(n: number): void;
}

type State =
  /** Both directions usable. */
  | 'open'
  /** We sent CLOSE_REQ; inbound DATA is still delivered (unless destroyed) until CLOSE_RSP. */
  | 'closing'
  /** CLOSE_RSP received or tunnel lost; the connection ID is no longer registered. */
  | 'closed';

/**
 * A TCP connection on the agent's side of the tunnel, as a Node Duplex on the server's side.
 *
 * The protocol cannot carry a half-close: ending the writable side sends CLOSE_REQ, after which the
 * agent closes the remote socket and answers CLOSE_RSP; data already in flight is still readable
 * until then. When the remote end closes (CLOSE_RSP), the readable side ends and, since
 * allowHalfOpen is off, so does the writable side.
 */
export class TunnelStream extends Duplex {
  private state: State = 'open';
  // The one write in progress while the link is congested (Writable serializes writes).
  private pendingChunk: Buffer | undefined;
  private pendingOffset = 0;
  private pendingCallback: ((error?: Error | null) => void) | undefined;

  constructor(
    readonly connectId: bigint,
    readonly address: string,
    private readonly carrier: StreamCarrier,
    highWaterMark: number,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: highWaterMark, writableHighWaterMark: highWaterMark });
  }

  get agentId(): string {
    return this.carrier.agentId;
  }

  /** Inbound DATA from the agent. */
  receive(data: Buffer): void {
    if (this.destroyed || data.length === 0) return;
    this.carrier.countBytesFromAgent(data.length);
    if (!this.push(data)) this.carrier.link.hold(this);
  }

  /** CLOSE_RSP from the agent: the remote socket is gone. */
  remoteClosed(error: string): void {
    this.finishState();
    if (error) this.destroy(new TunnelStreamError('remote-error', `connection ${this.connectId} closed by agent: ${error}`));
    else if (!this.destroyed) this.push(null);
  }

  /** The carrying gRPC stream ended. */
  tunnelLost(cause: Error | undefined): void {
    this.finishState();
    this.destroy(new TunnelStreamError('tunnel-lost', `tunnel to agent ${this.agentId} lost`, { cause }));
  }

  /** DATA with an error field: upstream never sends one, so treat it as a fatal remote error. */
  remoteFailed(error: string): void {
    this.destroy(new TunnelStreamError('remote-error', `connection ${this.connectId} failed at agent: ${error}`));
  }

  override _read(): void {
    this.carrier.link.release(this);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.state !== 'open') {
      callback(new TunnelStreamError('remote-error', `connection ${this.connectId} already closed by the remote end`));
      return;
    }
    this.pendingChunk = chunk;
    this.pendingOffset = 0;
    this.pendingCallback = callback;
    this.continueWrite();
  }

  private readonly continueWrite = (): void => {
    const chunk = this.pendingChunk;
    const callback = this.pendingCallback;
    if (!chunk || !callback) return;
    if (this.state !== 'open') {
      this.clearPending();
      callback(new TunnelStreamError('remote-error', `connection ${this.connectId} closed during write`));
      return;
    }
    const link = this.carrier.link;
    while (this.pendingOffset < chunk.length) {
      if (link.congested) {
        link.whenWritable(this.continueWrite);
        return;
      }
      const end = Math.min(chunk.length, this.pendingOffset + MAX_DATA_CHUNK);
      const data = this.pendingOffset === 0 && end === chunk.length ? chunk : chunk.subarray(this.pendingOffset, end);
      link.send({ type: PacketType.DATA, connectId: this.connectId, data, error: '' });
      this.carrier.countBytesToAgent(data.length);
      this.pendingOffset = end;
    }
    // Completing the write only once the link has room is what pauses whoever writes into us.
    if (link.congested) {
      link.whenWritable(this.continueWrite);
      return;
    }
    this.clearPending();
    callback();
  };

  private clearPending(): void {
    this.pendingChunk = undefined;
    this.pendingCallback = undefined;
    this.pendingOffset = 0;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.requestClose();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const link = this.carrier.link;
    link.cancelWhenWritable(this.continueWrite);
    link.release(this);
    this.clearPending();
    this.requestClose();
    callback(error);
  }

  private requestClose(): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.carrier.link.send({ type: PacketType.CLOSE_REQ, connectId: this.connectId });
  }

  private finishState(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.carrier.forget(this.connectId);
    this.carrier.link.release(this);
  }
}
