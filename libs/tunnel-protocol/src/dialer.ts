import { connect, type Socket } from 'node:net';

export interface DialContext {
  /** The DIAL_REQ protocol: "tcp" (the only one upstream servers send), "tcp4" or "tcp6". */
  protocol: string;
  /** Fires when the server abandons the dial (DIAL_CLS) or the dial timeout passes. */
  signal: AbortSignal;
}

/**
 * Opens the agent-side TCP connection for a DIAL_REQ. This is where the caller enforces which
 * targets are allowed: a rejection becomes the DIAL_RSP error the server sees.
 */
export type Dialer = (address: string, context: DialContext) => Promise<Socket>;

/** Splits "host:port" / "[v6]:port" the way Go's net.SplitHostPort does. */
export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`address ${JSON.stringify(address)}: expected host:port`);
  return { host: match[1] ?? match[2] ?? '', port };
}

/** A Dialer that connects wherever asked, subject to `allow`, with Nagle off as in Go. */
export function tcpDialer(options: { allow?: (host: string, port: number) => boolean } = {}): Dialer {
  return (address, { protocol, signal }) =>
    new Promise((resolve, reject) => {
      const { host, port } = parseHostPort(address);
      if (options.allow && !options.allow(host, port)) {
        reject(new Error(`dial ${protocol} ${address}: not allowed by agent policy`));
        return;
      }
      const family = protocol === 'tcp4' ? 4 : protocol === 'tcp6' ? 6 : 0;
      const socket = connect({ host, port, family, noDelay: true });
      const onAbort = () => socket.destroy(Object.assign(new Error('dial abandoned'), { code: 'ETIMEDOUT' }));
      const onError = (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        socket.removeListener('error', onError);
        resolve(socket);
      });
    });
}

const GO_STYLE_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connect: connection refused',
  ECONNRESET: 'read: connection reset by peer',
  ETIMEDOUT: 'i/o timeout',
  EHOSTUNREACH: 'connect: no route to host',
  ENETUNREACH: 'connect: network is unreachable',
  ENETDOWN: 'connect: network is down',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'no such host',
  EMFILE: 'socket: too many open files',
};

/**
 * DIAL_RSP error text. Upstream servers in http-connect mode map phrases such as "connection
 * refused" or "i/o timeout" to HTTP 502/504, so socket errors are spelled the way Go spells them.
 */
export function describeDialError(protocol: string, address: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code ? GO_STYLE_REASONS[code] : undefined;
  if (reason) return `dial ${protocol} ${address}: ${reason}`;
  return error instanceof Error ? error.message : String(error);
}
