/** Upstream's agent.proto has no package, so the path carries no package prefix. */
export const CONNECT_METHOD_PATH = '/AgentService/Connect';

/**
 * gRPC metadata keys of the handshake (konnectivity proto/header). HTTP/2 carries them lowercased and gRPC
 * implementations look them up case-insensitively; the upstream spelling is kept for reference.
 */
export const MetadataKey = {
  /** agent -> server, exactly one: the agent's unique ID. */
  agentId: 'agentID',
  /** agent -> server, at most one: URL-query-encoded AgentIdentifiers. */
  agentIdentifiers: 'agentIdentifiers',
  /** agent -> server, only when the server authenticates agents by service-account token. */
  authorization: 'authorization',
  /** server -> agent response header, exactly one: the replica's ID. */
  serverId: 'serverID',
  /** server -> agent response header, exactly one: how many replicas the agent should hold streams to. */
  serverCount: 'serverCount',
} as const;

export const BEARER_PREFIX = 'Bearer ';
