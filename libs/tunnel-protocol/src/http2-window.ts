interface WindowedSession {
  setLocalWindowSize(bytes: number): void;
  settings(settings: { initialWindowSize: number }): void;
  readonly state: { localWindowSize?: number };
}

const widened = new WeakSet<object>();

function isWindowedSession(value: unknown): value is WindowedSession {
  const session = value as Partial<WindowedSession> | null | undefined;
  return typeof session?.setLocalWindowSize === 'function' && typeof session.settings === 'function';
}

/**
 * Widens the HTTP/2 receive window of the connection carrying a grpc-js server call.
 *
 * An agent tunnel is a single HTTP/2 stream, so its agent->server throughput is capped at one
 * receive window per round trip; at Node's default 64 KiB that is about 1.3 MB/s over a 50 ms edge
 * link. grpc-go grows its windows by BDP estimation; grpc-js servers expose no such setting, so we
 * reach the session through the call's internals (call -> [nextCall...] -> stream -> session).
 * Best effort: returns false, changing nothing, if grpc-js ever lays these out differently.
 */
export function widenReceiveWindow(call: object, bytes: number): boolean {
  let hop: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && hop; depth++) {
    const session = (hop as { stream?: { session?: unknown } }).stream?.session;
    if (isWindowedSession(session)) {
      if (!widened.has(session)) {
        widened.add(session);
        session.setLocalWindowSize(bytes);
        session.settings({ initialWindowSize: bytes });
      }
      return true;
    }
    hop = (hop as { nextCall?: unknown }).nextCall;
  }
  return false;
}
