import { describe, expect, it } from 'vitest';
import type { Exec } from '@raven/netlink';
import { DataPathApplier } from '../src/datapath.ts';
import { buildDiagnoseReport } from '../src/diagnose.ts';
import { EMPTY_PLAN, type DataPathPlan } from '../src/planner.ts';

/**
 * A fake kernel with one modelled subsystem, table 9028's IPv4 routes (every other read answers empty and every
 * other subsystem is planned empty): enough to check what the applier records for the diagnose report, without root.
 */
class FakeRoutes implements Exec {
  readonly routes = new Map<string, { dst: string; dev: string; scope: string }>();
  fail = false;

  async run(cmd: string, args: string[], opts: { input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
    const line = args.join(' ');
    if (cmd === 'ip' && line === '-4 -d -j route show table 9028') return { stdout: JSON.stringify([...this.routes.values()].map((r) => ({ type: 'unicast', ...r }))), stderr: '' };
    if (cmd === 'ip' && line === '-force -batch -') {
      if (this.fail) throw new Error('RTNETLINK answers: Network is unreachable');
      for (const cmdLine of String(opts.input ?? '').split('\n').filter(Boolean)) {
        const [, verb, dst] = /^route (replace|del) (\S+)/.exec(cmdLine) ?? [];
        if (verb === 'replace') this.routes.set(dst!, { dst: dst!, dev: /dev (\S+)/.exec(cmdLine)![1]!, scope: /scope (\S+)/.exec(cmdLine)?.[1] ?? 'global' });
        if (verb === 'del') this.routes.delete(dst!);
      }
      return { stdout: '', stderr: '' };
    }
    return { stdout: cmd === 'ip' || cmd === 'bridge' ? '[]' : '', stderr: '' };
  }
}

function plan(dsts: string[]): DataPathPlan {
  const p = EMPTY_PLAN({ kind: 'gateway', gateway: 'gw-cloud', central: false });
  p.routes = dsts.map((dst) => ({ table: 9028, dst, dev: 'raven-wg0', scope: 'link' }));
  return p;
}

const T0 = Date.parse('2026-12-07T12:00:00Z');

describe('what the applier records for /debug/diagnose', () => {
  it('a planned change is no drift; a foreign deletion repaired by a verifying apply is, with what was missing', async () => {
    const kernel = new FakeRoutes();
    let now = T0;
    const applier = new DataPathApplier(kernel, () => now);
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24']), { verify: false });
    now += 1000;
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']), { verify: false });
    expect(applier.history().drift).toEqual([]);
    expect(applier.history().outcomes.find((o) => o.name === 'routes')).toMatchObject({ verified: false, summary: { added: 1 }, lastChange: { at: T0 + 1000 } });

    kernel.routes.delete('10.9.2.0/24'); // someone else flushes a route
    now += 1000;
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']), { verify: false });
    expect(kernel.routes.has('10.9.2.0/24')).toBe(false); // trusted between resyncs
    now += 1000;
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']), { verify: true });
    expect(kernel.routes.has('10.9.2.0/24')).toBe(true);
    expect(applier.history().drift).toEqual([{ subsystem: 'routes', at: T0 + 3000, summary: { added: 1, removed: 0, changed: 0 }, samples: { added: ['10.9.2.0/24 table 9028 dev raven-wg0'], removed: [] } }]);

    // A verifying apply that finds the kernel as planned records no drift.
    now += 1000;
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']), { verify: true });
    expect(applier.history().drift).toHaveLength(1);

    // A route someone else adds to Raven's table is drift too, and removed.
    kernel.routes.set('10.66.0.0/16', { dst: '10.66.0.0/16', dev: 'eth0', scope: 'global' });
    now += 1000;
    await applier.apply(plan(['10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']), { verify: true });
    expect(applier.history().drift.at(-1)).toMatchObject({ subsystem: 'routes', summary: { removed: 1 }, samples: { added: [], removed: ['10.66.0.0/16 table 9028 dev eth0'] } });

    const report = buildDiagnoseReport({ nodeName: 'c1', now, driver: 'wireguard', l3Enabled: true, ready: true, outcomes: applier.history().outcomes, drift: applier.history().drift });
    expect(report.subsystems.find((s) => s.name === 'routes')).toMatchObject({ driftRepairs: 2, verified: true, lastDrift: { removed: 1, removedSample: ['10.66.0.0/16 table 9028 dev eth0'] } });
  });

  it('a failed apply is recorded on its subsystem, and the next success clears it', async () => {
    const kernel = new FakeRoutes();
    const applier = new DataPathApplier(kernel, () => T0);
    kernel.fail = true;
    await expect(applier.apply(plan(['10.9.1.0/24']))).rejects.toThrow(/Network is unreachable/);
    expect(applier.history().outcomes.find((o) => o.name === 'routes')?.error).toMatch(/Network is unreachable/);
    kernel.fail = false;
    await applier.apply(plan(['10.9.1.0/24']));
    expect(applier.history().outcomes.find((o) => o.name === 'routes')?.error).toBeUndefined();
    // The repair after a failure is no drift: nothing had been applied.
    expect(applier.history().drift).toEqual([]);
  });
});
