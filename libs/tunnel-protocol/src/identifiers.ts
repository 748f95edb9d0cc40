import { HandshakeError } from './errors.ts';

/**
 * What an agent advertises in the `agentIdentifiers` header: a URL query string such as
 * `host=node-a&ipv4=10.0.0.5&default-route=true`. Keys are konnectivity's identifier types;
 * values repeat (`host=a&host=b`). Servers route dials to an agent by these.
 */
export interface AgentIdentifiers {
  host: string[];
  ipv4: string[];
  ipv6: string[];
  cidr: string[];
  defaultRoute: boolean;
}

export const emptyIdentifiers = (): AgentIdentifiers => ({ host: [], ipv4: [], ipv6: [], cidr: [], defaultRoute: false });

const LIST_KEYS = ['host', 'ipv4', 'ipv6', 'cidr'] as const;
const DEFAULT_ROUTE = 'default-route';

export function formatAgentIdentifiers(ids: Partial<AgentIdentifiers>): string {
  const query = new URLSearchParams();
  for (const key of LIST_KEYS) for (const value of ids[key] ?? []) query.append(key, value);
  if (ids.defaultRoute) query.append(DEFAULT_ROUTE, 'true');
  return query.toString();
}

/**
 * Parses the header the way upstream servers do: unknown identifier types are ignored (newer
 * agents may send more), `default-route` counts only if its first value is a Go-style true, and
 * strings Go's url.ParseQuery rejects (`;` separators, broken %-escapes) are refused.
 */
export function parseAgentIdentifiers(header: string): AgentIdentifiers {
  if (header.includes(';')) throw new HandshakeError('bad-metadata', 'agentIdentifiers: ";" is not a valid separator');
  if (/%(?![0-9a-fA-F]{2})/.test(header)) throw new HandshakeError('bad-metadata', 'agentIdentifiers: invalid %-escape');
  const ids = emptyIdentifiers();
  const query = new URLSearchParams(header);
  for (const key of LIST_KEYS) ids[key] = query.getAll(key);
  const defaultRoute = query.get(DEFAULT_ROUTE);
  ids.defaultRoute = defaultRoute !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(defaultRoute);
  return ids;
}
