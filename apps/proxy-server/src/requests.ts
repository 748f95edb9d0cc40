import { HeadEndScanner, HeadError, parseHead, type RequestHead } from './head.ts';

/** A piece of a caller's byte stream: bytes to pass on as they are, or the head of a further request on the connection. */
export type Segment = { kind: 'bytes'; data: Buffer } | { kind: 'head'; head: Buffer; request: RequestHead };

type State =
  | { at: 'head' }
  | { at: 'length'; left: number }
  | { at: 'chunk-size'; line: string }
  | { at: 'chunk-data'; left: number }
  | { at: 'chunk-end'; left: number }
  | { at: 'trailer'; line: string }
  | { at: 'raw' };

const MAX_LINE = 4096;

/** A request whose head switches protocols (websocket, SPDY) or tunnels: what follows is no longer HTTP/1.1 requests. */
export function switchesProtocol(request: RequestHead): boolean {
  return request.method === 'CONNECT' || request.headers.has('upgrade');
}

/**
 * Follows the requests a caller sends on one connection after the first: skips each request's body (Content-Length
 * or chunked) and hands back the head of the next one, so every request can be routed and authorized, not only the
 * first. After a request that switches protocols everything is passed on unparsed. Looks at every byte at most once.
 */
export class RequestFramer {
  private state: State = { at: 'head' };
  private headChunks: Buffer[] = [];
  private headBytes = 0;
  private scanner = new HeadEndScanner();

  constructor(private readonly maxHead: number) {}

  /** Call with each request head (the first one too) before the bytes that follow it. */
  begin(request: RequestHead): void {
    if (switchesProtocol(request)) {
      this.state = { at: 'raw' };
      return;
    }
    const te = request.headers.get('transfer-encoding');
    if (te !== undefined) {
      if (!/(?:^|,)\s*chunked\s*$/i.test(te)) throw new HeadError(400, 'a request body whose last transfer coding is not chunked');
      this.state = { at: 'chunk-size', line: '' };
      return;
    }
    const length = request.headers.get('content-length');
    if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) throw new HeadError(400, 'malformed Content-Length');
      const left = Number(length);
      this.state = left > 0 ? { at: 'length', left } : { at: 'head' };
      return;
    }
    this.state = { at: 'head' };
  }

  push(chunk: Buffer): Segment[] {
    const out: Segment[] = [];
    let pos = 0;
    let passFrom = 0;
    const pass = (end: number) => {
      if (end > passFrom) out.push({ kind: 'bytes', data: chunk.subarray(passFrom, end) });
    };
    while (pos < chunk.length) {
      const s = this.state;
      switch (s.at) {
        case 'raw':
          pos = chunk.length;
          break;
        case 'length':
        case 'chunk-data': {
          const take = Math.min(s.left, chunk.length - pos);
          pos += take;
          s.left -= take;
          if (s.left === 0) this.state = s.at === 'length' ? { at: 'head' } : { at: 'chunk-end', left: 2 };
          break;
        }
        case 'chunk-end':
          pos++;
          if (--s.left === 0) this.state = { at: 'chunk-size', line: '' };
          break;
        case 'chunk-size':
        case 'trailer': {
          const byte = chunk[pos++]!;
          if (byte !== 0x0a) {
            if (s.line.length >= MAX_LINE) throw new HeadError(400, 'chunked body line too long');
            s.line += String.fromCharCode(byte);
            break;
          }
          const line = s.line.replace(/\r$/, '');
          if (s.at === 'trailer') {
            this.state = line === '' ? { at: 'head' } : { at: 'trailer', line: '' };
            break;
          }
          const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(line);
          if (!size) throw new HeadError(400, 'malformed chunk size');
          const n = parseInt(size[1]!, 16);
          this.state = n === 0 ? { at: 'trailer', line: '' } : { at: 'chunk-data', left: n };
          break;
        }
        case 'head': {
          pass(pos);
          const rest = chunk.subarray(pos);
          const cut = this.scanner.push(rest);
          if (cut < 0) {
            this.headBytes += rest.length;
            if (this.headBytes > this.maxHead) throw new HeadError(431, `request head larger than ${this.maxHead} bytes`);
            this.headChunks.push(rest);
            return out;
          }
          this.headChunks.push(rest.subarray(0, cut));
          const head = Buffer.concat(this.headChunks);
          this.headChunks = [];
          this.headBytes = 0;
          this.scanner = new HeadEndScanner();
          if (head.length - 4 > this.maxHead) throw new HeadError(431, `request head larger than ${this.maxHead} bytes`);
          // Bytes between requests (a stray CRLF) are allowed before a request line (RFC 9112 2.2).
          const text = head.subarray(0, head.length - 4).toString('latin1').replace(/^(?:\r\n)+/, '');
          const request = parseHead(text);
          out.push({ kind: 'head', head, request });
          pos += cut;
          passFrom = pos;
          this.begin(request);
          break;
        }
      }
    }
    pass(chunk.length);
    return out;
  }
}
