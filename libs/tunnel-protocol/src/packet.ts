/**
 * In-memory form of the konnectivity `Packet` (proto/agent.proto). The oneof payload is flattened
 * into the packet so that a decoded packet is a single object. IDs are int64 on the wire and
 * upstream servers draw dial IDs from the full 63-bit range, hence bigint.
 */
export const PacketType = {
  DIAL_REQ: 0,
  DIAL_RSP: 1,
  CLOSE_REQ: 2,
  CLOSE_RSP: 3,
  DATA: 4,
  DIAL_CLS: 5,
  DRAIN: 6,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/** A packet type this implementation does not know; proto3 enums are open, so peers may send one. */
export const UNRECOGNIZED = -1;

export interface DialRequest {
  type: typeof PacketType.DIAL_REQ;
  protocol: string;
  address: string;
  random: bigint;
}

export interface DialResponse {
  type: typeof PacketType.DIAL_RSP;
  random: bigint;
  connectId: bigint;
  error: string;
}

export interface CloseRequest {
  type: typeof PacketType.CLOSE_REQ;
  connectId: bigint;
}

export interface CloseResponse {
  type: typeof PacketType.CLOSE_RSP;
  connectId: bigint;
  error: string;
}

export interface DataPacket {
  type: typeof PacketType.DATA;
  connectId: bigint;
  data: Buffer;
  error: string;
}

export interface CloseDial {
  type: typeof PacketType.DIAL_CLS;
  random: bigint;
}

export interface Drain {
  type: typeof PacketType.DRAIN;
}

export interface UnrecognizedPacket {
  type: typeof UNRECOGNIZED;
  wireType: number;
}

export type Packet = DialRequest | DialResponse | CloseRequest | CloseResponse | DataPacket | CloseDial | Drain;
export type ReceivedPacket = Packet | UnrecognizedPacket;

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(PacketType).map(([name, value]) => [value, name]));

export function packetTypeName(type: number): string {
  return NAMES[type] ?? `UNKNOWN(${type})`;
}
