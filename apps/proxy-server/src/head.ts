/** The first request head on a front-end connection: all routing needs, parsed without buffering a body. */
export interface RequestHead {
  method: string;
  /** The request target as sent: origin-form `/path?query`, or absolute-form `http://host:port/path`. */
  target: string;
  /** Origin-form path and query (from an absolute-form target too). */
  url: string;
  /** Host header, or the authority of an absolute-form target. */
  host: string | undefined;
  headers: Map<string, string>;
}

export class HeadError extends Error {
  override readonly name = 'HeadError';
  constructor(readonly status: 400 | 405 | 408 | 431, message: string) {
    super(message);
  }
}

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

/** Parses an HTTP/1.x request head (request line and header lines, without the final blank line). */
export function parseHead(text: string): RequestHead {
  const lines = text.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0] ?? '');
  if (!line) throw new HeadError(400, 'malformed request line');
  const [, method, target] = line as unknown as [string, string, string];
  if (method === 'CONNECT') throw new HeadError(405, 'CONNECT is not supported: address the node by name (Host, X-Tunnel-Proxy-Host or ?nodeName=)');
  const headers = new Map<string, string>();
  for (const raw of lines.slice(1)) {
    const header = HEADER.exec(raw);
    if (!header) throw new HeadError(400, 'malformed header line');
    const name = header[1]!.toLowerCase();
    if (name === 'host' && headers.has('host')) throw new HeadError(400, 'more than one Host header');
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${header[2]}` : header[2]!);
  }
  let url = target;
  let host = headers.get('host');
  if (/^https?:\/\//i.test(target)) {
    try {
      const absolute = new URL(target);
      url = `${absolute.pathname}${absolute.search}`;
      host = absolute.host;
    } catch {
      throw new HeadError(400, 'malformed absolute request target');
    }
  } else if (!target.startsWith('/')) {
    throw new HeadError(400, 'unsupported request target form');
  }
  return { method, target, url, host, headers };
}

/**
 * Finds the end of a request head (CRLF CRLF) across chunks, looking at every byte once: a head sent a byte at a time
 * costs no more than one sent at once.
 */
export class HeadEndScanner {
  private matched = 0;
  /** Bytes seen so far. */
  seen = 0;

  /** The offset in `chunk` just past the head's end, or -1 when the head goes on. */
  push(chunk: Buffer): number {
    let matched = this.matched;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === (matched === 0 || matched === 2 ? 0x0d : 0x0a)) matched++;
      else matched = byte === 0x0d ? 1 : 0;
      if (matched === 4) {
        this.matched = 0;
        this.seen += i + 1;
        return i + 1;
      }
    }
    this.matched = matched;
    this.seen += chunk.length;
    return -1;
  }
}

/**
 * Reads a connection up to the end of its first request head. Resolves with the head's bytes, whatever was read
 * beyond it (the start of the body, or of the next protocol after an upgrade), and the parsed head. The socket is
 * left paused, with no listeners of ours.
 */
export function readHead(socket: NodeJS.ReadableStream & { pause(): void; destroyed: boolean }, maxBytes: number, timeoutMs: number): Promise<{ head: Buffer; rest: Buffer; request: RequestHead }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const scanner = new HeadEndScanner();
    const finish = (error: HeadError | undefined, result?: { head: Buffer; rest: Buffer; request: RequestHead }) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', onEnd);
      socket.pause();
      if (error) reject(error);
      else resolve(result!);
    };
    const onData = (chunk: Buffer) => {
      const before = scanner.seen;
      const cut = scanner.push(chunk);
      if (cut < 0) {
        if (scanner.seen > maxBytes) return finish(new HeadError(431, `request head larger than ${maxBytes} bytes`));
        chunks.push(chunk);
        return;
      }
      const end = before + cut;
      if (end - 4 > maxBytes) return finish(new HeadError(431, `request head larger than ${maxBytes} bytes`));
      chunks.push(chunk.subarray(0, cut));
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, end);
      try {
        finish(undefined, { head, rest: chunk.subarray(cut), request: parseHead(head.subarray(0, end - 4).toString('latin1')) });
      } catch (err) {
        finish(err instanceof HeadError ? err : new HeadError(400, (err as Error).message));
      }
    };
    const onEnd = () => finish(new HeadError(400, 'connection closed before a complete request head'));
    const timer = setTimeout(() => finish(new HeadError(408, 'no complete request head in time')), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}
