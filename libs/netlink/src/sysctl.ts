import { InvalidSpecError, OutputParseError } from './errors.ts';
import type { Exec } from './exec.ts';
import { assertOwned, type ApplySummary, type Reconciler } from './reconciler.ts';

/**
 * Kernel parameters by sysctl name: `net.ipv4.ip_forward`, or with slashes when a component contains dots
 * (`net/ipv4/conf/eth0.100/rp_filter`). Values compare with whitespace collapsed (`32768 60999`).
 */
export type SysctlValues = Readonly<Record<string, string | number>>;

export interface SysctlOwnership {
  /** The parameters this reconciler reads and may write. */
  keys: readonly string[];
}

export interface SysctlDiff {
  set: Array<{ key: string; value: string; previous: string }>;
}

const KEY = /^[A-Za-z0-9_.\-/]+$/;
const normalizeValue = (value: string | number) => String(value).trim().replace(/\s+/g, ' ');

export function diffSysctls(desired: SysctlValues, actual: ReadonlyMap<string, string>, ownership: SysctlOwnership): SysctlDiff {
  const owned = new Set(ownership.keys);
  const set: SysctlDiff['set'] = [];
  for (const [key, value] of Object.entries(desired)) {
    assertOwned('sysctl', key, owned);
    const want = normalizeValue(value);
    const have = actual.get(key);
    if (have === undefined) throw new InvalidSpecError(`sysctl ${key} was not read`);
    if (have !== want) set.push({ key, value: want, previous: have });
  }
  return { set };
}

/** Reads and writes sysctls with one `sysctl` process each way, so it works through any Exec (e.g. inside a netns). */
export class SysctlReconciler implements Reconciler<SysctlValues, Map<string, string>, SysctlDiff> {
  constructor(
    private readonly exec: Exec,
    readonly ownership: SysctlOwnership,
  ) {
    for (const key of ownership.keys) if (!KEY.test(key)) throw new InvalidSpecError(`invalid sysctl name: ${JSON.stringify(key)}`);
  }

  async read(): Promise<Map<string, string>> {
    const keys = this.ownership.keys;
    if (keys.length === 0) return new Map();
    const { stdout } = await this.exec.run('sysctl', ['-n', ...keys]);
    const values = stdout.replace(/\n$/, '').split('\n');
    if (values.length !== keys.length) throw new OutputParseError('sysctl -n', `expected ${keys.length} values, got ${values.length}`);
    return new Map(keys.map((key, i) => [key, normalizeValue(values[i] ?? '')]));
  }

  diff(desired: SysctlValues, actual: Map<string, string>): SysctlDiff {
    return diffSysctls(desired, actual, this.ownership);
  }

  async apply(diff: SysctlDiff): Promise<ApplySummary> {
    if (diff.set.length > 0) await this.exec.run('sysctl', ['-q', '-w', ...diff.set.map(({ key, value }) => `${key}=${value}`)]);
    return { added: 0, removed: 0, changed: diff.set.length };
  }
}
