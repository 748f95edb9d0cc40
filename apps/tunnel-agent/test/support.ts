import type { BoxNode } from '@raven/testbed';

export interface RavenKernelState {
  links: string[];
  rules: string[];
  routes: string[];
  ipsets: string[];
  chains: string[];
}

/** What Raven owns in a node's kernel, read with the ordinary tools (so a test checks the kernel, not our reconcilers). */
export async function ravenKernelState(node: BoxNode): Promise<RavenKernelState> {
  const sh = async (script: string) => (await node.exec('sh', ['-c', script])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return {
    links: await sh("ip -o link show | awk -F': ' '{print $2}' | grep -E '^raven' || true"),
    rules: await sh("ip rule show | grep -E '^(100|101):' || true; ip -6 rule show | grep -E '^(100|101):' || true"),
    routes: await sh('ip route show table 9027 2>/dev/null; ip route show table 9028 2>/dev/null; ip -6 route show table 9028 2>/dev/null; true'),
    ipsets: await sh("ipset list -n | grep -E '^raven-' || true"),
    chains: await sh("(iptables-save; ip6tables-save) | grep -E '^:RAVEN-|-j RAVEN-' || true"),
  };
}

export const isEmptyState = (s: RavenKernelState) => Object.values(s).every((v) => v.length === 0);
