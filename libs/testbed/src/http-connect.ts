import type { Duplex } from 'node:stream';

/**
 * Sends `CONNECT target` on an open socket (an HTTP CONNECT proxy such as konnectivity's frontend) and resolves with
 * the response's status line once the head is read. The socket is left paused just after the head, with any bytes
 * that followed it put back, so the caller owns the tunnelled stream from its first byte.
 */
export function sendConnect(socket: Duplex, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.pause();
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(head.subarray(0, head.indexOf('\r\n')).toString());
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}
