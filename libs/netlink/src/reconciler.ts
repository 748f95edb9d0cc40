import { InvalidSpecError } from './errors.ts';

/** What an apply changed. All zero means the kernel already matched the desired state. */
export interface ApplySummary {
  readonly added: number;
  readonly removed: number;
  readonly changed: number;
}

export const NO_CHANGES: ApplySummary = Object.freeze({ added: 0, removed: 0, changed: 0 });

export function sumSummaries(...summaries: ApplySummary[]): ApplySummary {
  return summaries.reduce(
    (sum, s) => ({ added: sum.added + s.added, removed: sum.removed + s.removed, changed: sum.changed + s.changed }),
    NO_CHANGES,
  );
}

export function hasChanges(summary: ApplySummary): boolean {
  return summary.added + summary.removed + summary.changed > 0;
}

/**
 * One kernel subsystem. `read` snapshots the kernel (at least everything the reconciler owns), `diff` is pure (no I/O;
 * it plans changes only to owned objects), `apply` executes a plan in one batch and reports what it changed.
 */
export interface Reconciler<Desired, Actual, Diff> {
  read(): Promise<Actual>;
  diff(desired: Desired, actual: Actual): Diff;
  apply(diff: Diff): Promise<ApplySummary>;
  /**
   * Pure: what `read` returns right after `desired` was applied, so a caller that trusts its last apply can diff
   * against that instead of reading the kernel. Only for subsystems where that is exact.
   */
  assumed?(desired: Desired): Actual;
}

/** read → diff → apply. */
export async function reconcile<Desired, Actual, Diff>(reconciler: Reconciler<Desired, Actual, Diff>, desired: Desired): Promise<ApplySummary> {
  const actual = await reconciler.read();
  return reconciler.apply(reconciler.diff(desired, actual));
}

/** Objects to add, objects to remove, and objects present under the same identity but with other attributes. */
export interface KeyedDiff<D, A> {
  readonly add: D[];
  readonly remove: A[];
  readonly change: Array<{ readonly desired: D; readonly actual: A }>;
}

export function keyedSummary(diff: KeyedDiff<unknown, unknown>): ApplySummary {
  return { added: diff.add.length, removed: diff.remove.length, changed: diff.change.length };
}

/**
 * Matches desired to actual objects by identity key in O(n). Duplicate actual objects (the kernel allows some, such
 * as identical policy rules) beyond the first are removed; a duplicate desired key is a spec error.
 */
export function diffKeyed<D, A>(
  desired: Iterable<D>,
  actual: Iterable<A>,
  keys: { desired: (d: D) => string; actual: (a: A) => string },
  equal: (d: D, a: A) => boolean,
): KeyedDiff<D, A> {
  const wanted = new Map<string, D>();
  for (const d of desired) {
    const key = keys.desired(d);
    if (wanted.has(key)) throw new InvalidSpecError(`duplicate desired entry for ${key}`);
    wanted.set(key, d);
  }
  const seen = new Set<string>();
  const result: KeyedDiff<D, A> = { add: [], remove: [], change: [] };
  for (const a of actual) {
    const key = keys.actual(a);
    const d = wanted.get(key);
    if (d === undefined || seen.has(key)) {
      result.remove.push(a);
      continue;
    }
    seen.add(key);
    if (!equal(d, a)) result.change.push({ desired: d, actual: a });
  }
  for (const [key, d] of wanted) if (!seen.has(key)) result.add.push(d);
  return result;
}

export function assertOwned(kind: string, value: string | number, owned: ReadonlySet<string | number>): void {
  if (!owned.has(value)) throw new InvalidSpecError(`${kind} ${value} is not owned by this reconciler`);
}
