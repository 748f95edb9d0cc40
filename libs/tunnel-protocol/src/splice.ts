import type { Duplex } from 'node:stream';

/**
 * Joins two byte streams into a proxy, both ways, with backpressure (pipe), and closes them the way
 * a tunnel must: when one side ends cleanly the other is ended, then destroyed once its last bytes
 * are flushed (the protocol has no half-close); when one side dies abruptly the other is destroyed.
 *
 * `pipeline(a, b, a)` is not a substitute: it reports a premature close, and destroys `a` with
 * bytes still unflushed, whenever `b` closes first, e.g. when the remote server closes the connection.
 *
 * Resolves once both streams have closed, with the first error either reported.
 */
export function spliceStreams(a: Duplex, b: Duplex): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let firstError: Error | undefined;
    let open = 2;
    const track = (self: Duplex, other: Duplex) => {
      self.on('error', (error: Error) => (firstError ??= error));
      self.once('close', () => {
        self.unpipe(other);
        if (!self.readableEnded) other.destroy();
        else if (other.writableFinished) other.destroy();
        else other.once('finish', () => other.destroy());
        if (--open === 0) resolve(firstError);
      });
      self.pipe(other);
    };
    track(a, b);
    track(b, a);
  });
}
