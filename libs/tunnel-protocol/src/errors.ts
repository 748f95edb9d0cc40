/** A peer sent bytes that are not a valid konnectivity Packet. The tunnel carrying it is torn down. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

export type DialFailureReason =
  /** No connected, non-draining agent matches the selector. */
  | 'no-agent'
  /** The agent did not answer within the dial timeout. */
  | 'timeout'
  /** The agent answered with an error: the target refused, was unreachable, or the agent's policy forbade it. */
  | 'refused'
  /** The tunnel to the agent ended before the agent answered. */
  | 'agent-lost'
  /** The agent withdrew the dial with DIAL_CLS. */
  | 'cancelled-by-agent'
  /** The caller's AbortSignal fired, or the server is closing. */
  | 'aborted';

export class DialError extends Error {
  override readonly name = 'DialError';
  constructor(
    readonly reason: DialFailureReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type StreamFailureReason =
  /** The gRPC stream carrying the connection ended. */
  | 'tunnel-lost'
  /** The peer closed the connection with an error (CLOSE_RSP/DATA error), or wrote after it closed. */
  | 'remote-error';

/** Fails a tunnelled connection after it was established. */
export class TunnelStreamError extends Error {
  override readonly name = 'TunnelStreamError';
  constructor(
    readonly reason: StreamFailureReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type HandshakeFailureReason =
  /** agentID / agentIdentifiers (server side) or serverID / serverCount (agent side) missing or malformed. */
  | 'bad-metadata'
  /** The authorize hook refused the agent, or the server refused the agent's credentials. */
  | 'unauthorized'
  /** The peer did not complete the handshake in time. */
  | 'timeout'
  /** The transport failed before the handshake completed. */
  | 'unavailable';

export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
  constructor(
    readonly reason: HandshakeFailureReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
