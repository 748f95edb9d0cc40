import {
  AddressReconciler, FdbReconciler, IpsetReconciler, IptablesReconciler, LinkReconciler, NeighbourReconciler, RouteReconciler,
  NO_CHANGES, RuleReconciler, SysctlReconciler, hasChanges, reconcile, sumSummaries, type ApplySummary, type Exec, type Reconciler,
} from '@raven/netlink';
import { DATAPATH, type KernelSubsystem } from '@raven/api-types';
import { diffSamples, type ApplyOutcome, type DriftEvent } from './diagnose.ts';
import { OWNED, type DataPathPlan } from './planner.ts';

export interface ApplyOptions {
  /**
   * Read the kernel for every subsystem (the default). With false, the last successful apply is trusted: a subsystem
   * whose desired state did not change is skipped, and routes and ipsets that did change are diffed against what
   * that apply left, without reading the kernel. The caller verifies on a slower period, which is what repairs
   * changes made by someone else.
   */
  verify?: boolean;
}

type Subsystem = KernelSubsystem;

/** Drift events kept for the diagnose report (the report counts those within its window). */
const DRIFT_HISTORY = 256;

/**
 * Applies a DataPathPlan with one reconciler per kernel subsystem, each owning only Raven's objects (links raven0 and
 * raven-wg0, tables 9027/9028, rule priorities 100/101, the raven-* ipsets, the RAVEN-* chains). Order matters:
 * links before what lives on them; ipsets before the iptables rules that use them; the reverse for cleanup.
 */
export class DataPathApplier {
  /** Per subsystem, the desired state it last applied without error (and that state serialised, to compare). */
  private readonly applied = new Map<Subsystem, { json: string; value: unknown }>();
  /** What the last apply did per subsystem, and the repairs of drift: the diagnose report, at no extra kernel read. */
  private readonly outcomes = new Map<Subsystem, ApplyOutcome>();
  private readonly drift: DriftEvent[] = [];
  private readonly links: LinkReconciler;
  private readonly addresses: AddressReconciler;
  private readonly fdb: FdbReconciler;
  private readonly neighbours: NeighbourReconciler;
  private readonly routes: RouteReconciler;
  private readonly rules: RuleReconciler;
  private readonly ipsets: IpsetReconciler;
  private readonly iptables4: IptablesReconciler;
  private readonly iptables6: IptablesReconciler;
  constructor(private readonly exec: Exec, private readonly now: () => number = Date.now) {
    this.links = new LinkReconciler(exec, { owned: OWNED.links });
    this.addresses = new AddressReconciler(exec, { devices: [DATAPATH.vxlanDevice] });
    this.fdb = new FdbReconciler(exec, { devices: [DATAPATH.vxlanDevice] });
    this.neighbours = new NeighbourReconciler(exec, { devices: [DATAPATH.vxlanDevice] });
    this.routes = new RouteReconciler(exec, { tables: OWNED.tables });
    this.rules = new RuleReconciler(exec, { priorities: OWNED.rulePriorities, tables: OWNED.tables });
    this.ipsets = new IpsetReconciler(exec, { sets: OWNED.ipsets });
    this.iptables4 = new IptablesReconciler(exec, 4, { chains: OWNED.chains });
    this.iptables6 = new IptablesReconciler(exec, 6, { chains: OWNED.chains });
  }

  /**
   * Links and sysctls first (devices must exist before addresses, neighbours and routes), then routing and ipsets in
   * parallel, then the firewall that references the ipsets. The VPN driver creates raven-wg0 before this runs.
   */
  async apply(plan: DataPathPlan, opts: ApplyOptions = {}): Promise<ApplySummary> {
    let verify = opts.verify ?? true;
    const wanted: Record<Subsystem, unknown> = {
      links: plan.links, sysctls: plan.sysctls, addresses: plan.addresses, fdb: plan.fdb, routes: plan.routes, rules: plan.rules,
      ipsets: plan.ipsets, neighbours: plan.neighbours, iptables4: plan.iptables.v4, iptables6: plan.iptables.v6,
    };
    const json = Object.fromEntries(Object.entries(wanted).map(([name, value]) => [name, JSON.stringify(value)])) as Record<Subsystem, string>;
    const last = new Map(this.applied);
    let plannedRelink = false;
    const unchanged = (name: Subsystem) => !plannedRelink && last.get(name)?.json === json[name];
    /**
     * Unchanged and not verifying: nothing to do. Changed: reconciled now, as a diff against what was last applied
     * when the reconciler can say what that left in the kernel (no read), else against a fresh read.
     */
    const step = async <D, A, X>(name: Subsystem, reconciler: Reconciler<D, A, X>, desired: D): Promise<ApplySummary> => {
      const previous = last.get(name);
      if (!verify && previous?.json === json[name]) return NO_CHANGES;
      this.applied.delete(name);
      const read = verify || !previous || !reconciler.assumed;
      const summary = await this.recorded(name, read, unchanged(name), async () => {
        const diff = reconciler.diff(desired, read ? await reconciler.read() : reconciler.assumed!(previous!.value as D));
        return { summary: await reconciler.apply(diff), samples: diffSamples(diff) };
      });
      this.applied.set(name, { json: json[name], value: desired });
      return summary;
    };

    const links = await step('links', this.links, plan.links);
    // A link that was (re)created lost what lived on it: everything else is read back this time.
    if (hasChanges(links)) verify = true;
    // Repairs after a planned link change are its consequence, not drift.
    plannedRelink = hasChanges(links) && !unchanged('links');
    // Per-device sysctls exist only while their device does, so the owned keys are exactly the planned ones.
    const sysctls = await step('sysctls', new SysctlReconciler(this.exec, { keys: Object.keys(plan.sysctls) }), plan.sysctls);
    // First pass over ipsets: create and fill the wanted sets only (owning just those, so nothing still referenced by
    // a rule is destroyed); the full pass after the firewall removes the sets no longer wanted.
    const wantedSets = new IpsetReconciler(this.exec, { sets: plan.ipsets.map((set) => set.name) });
    const previousSets = last.get('ipsets')?.value as DataPathPlan['ipsets'] | undefined;
    const ipsetsDelta = !verify && previousSets !== undefined;
    const ipsetsUnchanged = unchanged('ipsets');
    // The two passes are one outcome: the second records both (it runs whenever the first did).
    let filled = NO_CHANGES;
    const fillSets = async () => {
      if (!verify && ipsetsUnchanged) return NO_CHANGES;
      this.applied.delete('ipsets');
      try {
        filled = ipsetsDelta ? await wantedSets.apply(wantedSets.diff(plan.ipsets, this.ipsets.assumed(previousSets))) : await reconcile(wantedSets, plan.ipsets);
      } catch (err) {
        this.failed('ipsets', !ipsetsDelta, err);
        throw err;
      }
      return filled;
    };
    const [addresses, fdb, routes, rules, ipsets] = await Promise.all([
      step('addresses', this.addresses, plan.addresses),
      step('fdb', this.fdb, plan.fdb),
      step('routes', this.routes, plan.routes),
      step('rules', this.rules, plan.rules),
      fillSets(),
    ]);
    const neighbours = await step('neighbours', this.neighbours, plan.neighbours);
    const [v4, v6] = await Promise.all([
      step('iptables4', this.iptables4, plan.iptables.v4),
      step('iptables6', this.iptables6, plan.iptables.v6),
    ]);
    let ipsetsAfter = NO_CHANGES;
    if (verify || !ipsetsUnchanged) {
      // After the first pass the wanted sets hold their members; only sets no longer wanted are left to destroy.
      const names = new Set(plan.ipsets.map((set) => set.name));
      ipsetsAfter = await this.recorded('ipsets', !ipsetsDelta, ipsetsUnchanged, async () => ({
        summary: ipsetsDelta
          ? await this.ipsets.apply(this.ipsets.diff(plan.ipsets, this.ipsets.assumed([...plan.ipsets, ...previousSets.filter((set) => !names.has(set.name))])))
          : await reconcile(this.ipsets, plan.ipsets),
      }), filled);
      this.applied.set('ipsets', { json: json.ipsets, value: plan.ipsets });
    }
    return sumSummaries(links, sysctls, addresses, fdb, routes, rules, ipsets, neighbours, v4, v6, ipsetsAfter);
  }

  /**
   * Runs one subsystem's apply and records its outcome (with `carried`, what an earlier pass of the same apply did).
   * A read-back (verified) apply that changed the kernel while the desired state had not changed repaired drift:
   * someone else changed Raven's objects.
   */
  private async recorded(
    name: Subsystem, verified: boolean, desiredUnchanged: boolean,
    work: () => Promise<{ summary: ApplySummary; samples?: { added: string[]; removed: string[] } }>, carried: ApplySummary = NO_CHANGES,
  ): Promise<ApplySummary> {
    const at = this.now();
    let result: Awaited<ReturnType<typeof work>>;
    try {
      result = await work();
    } catch (err) {
      this.failed(name, verified, err);
      throw err;
    }
    const summary = sumSummaries(carried, result.summary);
    this.outcomes.set(name, { name, at, verified, summary, lastChange: hasChanges(summary) ? { at, summary } : this.outcomes.get(name)?.lastChange });
    if (verified && desiredUnchanged && hasChanges(summary)) {
      this.drift.push({ subsystem: name, at, summary, samples: result.samples ?? { added: [], removed: [] } });
      if (this.drift.length > DRIFT_HISTORY) this.drift.splice(0, this.drift.length - DRIFT_HISTORY);
    }
    return result.summary;
  }

  private failed(name: Subsystem, verified: boolean, err: unknown): void {
    this.outcomes.set(name, { name, at: this.now(), verified, summary: NO_CHANGES, lastChange: this.outcomes.get(name)?.lastChange, error: (err as Error).message });
  }

  /** The last apply per subsystem and the recent drift repairs, for the diagnose report (no kernel access). */
  history(): { outcomes: ApplyOutcome[]; drift: DriftEvent[] } {
    return { outcomes: [...this.outcomes.values()], drift: [...this.drift] };
  }

  /** Removes everything Raven owns in the kernel (uninstall, or the node leaving every role). */
  async cleanup(): Promise<ApplySummary> {
    this.applied.clear();
    const firewall = sumSummaries(await this.iptables4.cleanup(), await this.iptables6.cleanup());
    const rest = await Promise.all([this.ipsets.cleanup(), this.rules.cleanup(), this.routes.cleanup(), this.neighbours.cleanup(), this.fdb.cleanup()]);
    const links = await this.links.cleanup();
    return sumSummaries(firewall, ...rest, links);
  }
}
