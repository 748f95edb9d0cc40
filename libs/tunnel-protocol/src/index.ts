export { PacketType, UNRECOGNIZED, packetTypeName } from './packet.ts';
export type {
  Packet, ReceivedPacket, DialRequest, DialResponse, CloseRequest, CloseResponse, DataPacket, CloseDial, Drain, UnrecognizedPacket,
} from './packet.ts';
export { encodePacket, encodePacketFrame, decodePacket } from './codec.ts';
export { CONNECT_METHOD_PATH, MetadataKey, BEARER_PREFIX } from './service.ts';
export {
  GrpcStatus, GrpcStatusError, MessageDeframer, IncomingCall, serveAgentService, startConnectCall, keepAlive, encodeGrpcMessage, decodeGrpcMessage,
  MAX_AGENT_MESSAGE_BYTES, MAX_MESSAGE_BYTES, type AgentServiceHandle, type AgentServiceOptions, type ConnectTls,
} from './grpc.ts';
export { formatAgentIdentifiers, parseAgentIdentifiers, emptyIdentifiers, type AgentIdentifiers } from './identifiers.ts';
export {
  ProtocolError, DialError, TunnelStreamError, HandshakeError,
  type DialFailureReason, type StreamFailureReason, type HandshakeFailureReason,
} from './errors.ts';
export { silentLogger, type Logger } from './logger.ts';
export { MAX_DATA_CHUNK } from './link.ts';
export { TunnelStream } from './tunnel-stream.ts';
export { spliceStreams } from './splice.ts';
export {
  TunnelServer, DEFAULT_LIMITS,
  type AgentLimits, type TunnelServerOptions, type TunnelServerEvents, type TunnelServerStats,
  type AgentAdmission, type AgentInfo, type AgentSelector, type AgentTags, type DialOptions,
} from './server.ts';
export { tcpDialer, parseHostPort, describeDialError, type Dialer, type DialContext } from './dialer.ts';
export { AgentTunnel, type AgentTunnelOptions, type AgentTunnelStats, type AgentTunnelEvents } from './agent.ts';
export { AgentTunnelSet, type AgentTunnelSetOptions, type AgentTunnelSetEvents } from './agent-set.ts';
