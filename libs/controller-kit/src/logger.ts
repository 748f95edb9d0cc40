import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** JSON logs on stdout with a `component` field on every line (and `node` when the process is per-node). */
export function createLogger(component: string, opts: { level?: string; node?: string } = {}): Logger {
  return pino({
    level: (opts.level ?? process.env.LOG_LEVEL ?? 'info') as LevelWithSilent,
    base: { component, ...(opts.node ? { node: opts.node } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
