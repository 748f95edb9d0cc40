import { parseDuration } from '@raven/controller-kit';
import { UsageError } from './exit.ts';

/** A time flag in seconds: a plain number of seconds, or Go's duration form (`90s`, `1m30s`). */
export function seconds(name: string, value: unknown, fallback: number, opts: { allowZero?: boolean } = {}): number {
  if (value === undefined) return fallback;
  const text = String(value);
  const plain = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : undefined;
  const ms = plain === undefined ? parseDuration(text) : plain * 1000;
  if (ms === undefined || !Number.isFinite(ms) || ms < 0 || (ms === 0 && !opts.allowZero)) {
    throw new UsageError(`--${name} must be a ${opts.allowZero ? 'non-negative' : 'positive'} duration such as 90, 90s or 1m30s; got "${text.slice(0, 64)}"`);
  }
  return ms / 1000;
}
