// Which pinned binaries come from a KUBEBUILDER_ASSETS directory (setup-envtest's: etcd, kube-apiserver, kubectl)
// and which go-binaries.sh targets must still be built. Pure, so bootstrap's choice is unit-tested without a build.

/** The go-binaries.sh targets an envtest directory can stand in for, and the binaries each provides. */
export const ENVTEST_TARGETS = { etcd: ['etcd'], kubernetes: ['kube-apiserver', 'kube-controller-manager', 'kubectl'] };

/**
 * @param {readonly string[]} targets go-binaries.sh targets wanted
 * @param {{ assets?: { dir: string; files: readonly string[] }; built: ReadonlySet<string> }} state
 *   `files`: the names in KUBEBUILDER_ASSETS; `built`: targets already complete in the cache
 */
export function planBinaries(targets, { assets, built }) {
  const fromAssets = [];
  const fromCache = [];
  const build = [];
  const want = (target) => (built.has(target) ? undefined : build.push(target));
  for (const target of targets) {
    const provides = ENVTEST_TARGETS[target];
    if (!assets || !provides) {
      want(target);
      continue;
    }
    const present = provides.filter((b) => assets.files.includes(b));
    const missing = provides.filter((b) => !assets.files.includes(b));
    fromAssets.push(...present);
    if (missing.length === 0) continue;
    // The whole target is cheaper than several single builds, and a cached one already holds every binary.
    if (built.has(target) || present.length === 0 || missing.length === provides.length) {
      if (built.has(target)) fromCache.push(...missing);
      else build.push(target);
      continue;
    }
    for (const binary of missing) {
      if (built.has(binary)) fromCache.push(binary);
      else build.push(binary);
    }
  }
  const named = (t) => (ENVTEST_TARGETS[t] && ENVTEST_TARGETS[t].join(', ') !== t ? `${t} (${ENVTEST_TARGETS[t].join(', ')})` : t);
  const lacking = build.filter((t) => t in ENVTEST_TARGETS || Object.values(ENVTEST_TARGETS).some((bins) => bins.includes(t))).map(named);
  const message = assets
    ? `KUBEBUILDER_ASSETS=${assets.dir}: ${fromAssets.length > 0 ? `${fromAssets.join(', ')} from it` : 'none of the envtest binaries in it'}` +
      (fromCache.length > 0 ? `; ${fromCache.join(', ')} from the cache` : '') +
      (lacking.length > 0 ? `; building ${lacking.join(', ')}, which it lacks` : '')
    : undefined;
  return { fromAssets, fromCache, build, message };
}
