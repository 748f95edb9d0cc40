import { Duplex } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { MessageDeframer, PacketType, decodePacket, type ReceivedPacket } from '../src/index.ts';
import { MAX_DATA_CHUNK, PacketLink } from '../src/link.ts';

/** A carrier that records every write it is handed (single or vectored) and completes them when told to. */
class RecordingCarrier extends Duplex {
  readonly batches: Buffer[][] = [];
  private pending: Array<() => void> = [];
  autoComplete = true;

  constructor() {
    super({ highWaterMark: 16 * 1024 });
  }

  override _read(): void {
    // nothing to read: the link under test only writes
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.record([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: () => void): void {
    this.record(chunks.map((c) => c.chunk), callback);
  }

  complete(): void {
    for (const done of this.pending.splice(0)) done();
  }

  packets(): ReceivedPacket[] {
    const out: ReceivedPacket[] = [];
    const deframer = new MessageDeframer();
    for (const chunk of this.batches.flat()) deframer.push(chunk, (m) => out.push(decodePacket(m)));
    return out;
  }

  private record(chunks: Buffer[], callback: () => void): void {
    this.batches.push(chunks);
    if (this.autoComplete) callback();
    else this.pending.push(callback);
  }
}

const data = (connectId: number, bytes = 100) => ({ type: PacketType.DATA, connectId: BigInt(connectId), data: Buffer.alloc(bytes, connectId), error: '' }) as const;

describe('PacketLink write coalescing', () => {
  it('hands the packets of one event-loop turn to the stream as one vectored write, in order', async () => {
    const carrier = new RecordingCarrier();
    const link = new PacketLink(carrier);
    for (let i = 1; i <= 50; i++) link.send(data(i));
    link.sendControl({ type: PacketType.CLOSE_REQ, connectId: 51n });
    expect(carrier.batches).toHaveLength(0);
    await nextTurn();
    expect(carrier.batches).toHaveLength(1);
    expect(carrier.batches[0]).toHaveLength(51);
    const ids = carrier.packets().map((p) => ('connectId' in p ? Number(p.connectId) : -1));
    expect(ids).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
  });

  it('keeps order across turns: a later turn is a later batch', async () => {
    const carrier = new RecordingCarrier();
    const link = new PacketLink(carrier);
    link.send(data(1));
    link.send(data(2));
    await nextTurn();
    link.send(data(3));
    await nextTurn();
    expect(carrier.batches.map((b) => b.length)).toEqual([2, 1]);
    expect(carrier.packets().map((p) => ('connectId' in p ? Number(p.connectId) : -1))).toEqual([1, 2, 3]);
  });

  it('counts corked bytes as queued: congestion, the write result and the drain wake-up still apply', async () => {
    const carrier = new RecordingCarrier();
    carrier.autoComplete = false;
    const link = new PacketLink(carrier);
    const results: boolean[] = [];
    let i = 0;
    while (!link.congested && i < 100) results.push(link.send(data(++i, MAX_DATA_CHUNK)));
    // Nothing reached the carrier yet, but 1 MiB is held: producers must stop now, not after the flush.
    expect(carrier.batches).toHaveLength(0);
    expect(link.congested).toBe(true);
    expect(i).toBe(16);
    expect(results[0]).toBe(false); // 64 KiB is past the stream's own 16 KiB mark
    let woken = 0;
    link.whenWritable(() => woken++);
    await nextTurn();
    expect(carrier.batches).toHaveLength(1);
    expect(link.congested).toBe(true); // written but not completed: still queued
    expect(woken).toBe(0);
    carrier.complete();
    await nextTurn();
    expect(link.congested).toBe(false);
    expect(woken).toBe(1);
  });

  it('ending the stream flushes what is corked first', async () => {
    const carrier = new RecordingCarrier();
    const link = new PacketLink(carrier);
    link.send(data(1));
    carrier.end();
    await nextTurn();
    expect(carrier.packets()).toHaveLength(1);
    expect(carrier.writableFinished).toBe(true);
  });
});
