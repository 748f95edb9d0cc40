import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';

/**
 * Just enough RFC 6455 for tests: the handshake, and binary frames up to 64 KiB (client frames masked), which is
 * what the kubelet's exec/attach websocket (v4/v5.channel.k8s.io) carries: one channel byte, then data.
 */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { binary: 0x2, close: 0x8 } as const;

export const acceptKey = (key: string) => createHash('sha1').update(key + GUID).digest('base64');
export const newKey = () => randomBytes(16).toString('base64');

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head = Buffer.alloc(len < 126 ? 2 : 4);
  head[0] = 0x80 | opcode;
  if (len < 126) head[1] = len;
  else {
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([head, key, masked]);
}

export interface Frame {
  opcode: number;
  payload: Buffer;
}

/** Reads frames from a stream; calls `onFrame` for each complete one. */
export function readFrames(stream: Duplex, onFrame: (frame: Frame) => void, initial: Buffer = Buffer.alloc(0)): void {
  let buffer = initial;
  const drain = () => {
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 0x0f;
      const masked = (buffer[1]! & 0x80) !== 0;
      let len = buffer[1]! & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buffer.length < 4) return;
        len = buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        throw new Error('frames over 64 KiB are not supported by this test helper');
      }
      const maskKey = masked ? buffer.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (buffer.length < offset + len) return;
      const payload = Buffer.from(buffer.subarray(offset, offset + len));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i]! ^= maskKey[i % 4]!;
      buffer = buffer.subarray(offset + len);
      onFrame({ opcode, payload });
    }
  };
  stream.on('data', (chunk: Buffer) => {
    buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
    drain();
  });
  drain();
}
