type LogFn = (obj: object, msg?: string) => void;

/** The subset of a pino logger this library writes to; pass `pino()` or a child of it. */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const noop: LogFn = () => undefined;
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
