import { z } from 'zod';
import type { Exec } from '@raven/netlink';

export interface HostFacts {
  privateIP: string;
  underlayDevice: string;
  underlayMtu: number;
}

export class HostFactsError extends Error {
  override readonly name = 'HostFactsError';
}

const addrSchema = z.array(z.object({
  ifname: z.string(),
  mtu: z.number().optional(),
  addr_info: z.array(z.object({ local: z.string().optional(), family: z.string().optional() })).optional(),
}));

/** The underlay: the interface that carries the node's private (Internal) IP, and its MTU. */
export async function discoverHostFacts(exec: Exec, privateIP: string): Promise<HostFacts> {
  const { stdout } = await exec.run('ip', ['-j', 'addr', 'show']);
  const links = addrSchema.parse(JSON.parse(stdout));
  const link = links.find((l) => (l.addr_info ?? []).some((a) => a.local === privateIP));
  if (!link) throw new HostFactsError(`no interface holds the node's InternalIP ${privateIP}`);
  return { privateIP, underlayDevice: link.ifname, underlayMtu: link.mtu ?? 1500 };
}
