import { isIPv4 } from 'node:net';
import { InvalidSpecError } from '@raven/netlink';

/**
 * VXLAN endpoint identities are derived from the node's private IP, so every node knows every other node's
 * without exchanging anything: the VTEP address replaces the first octet with 240 (upstream's scheme), and the
 * MAC is a locally administered unicast address carrying the four octets of the private IP.
 */
function octets(privateIP: string): string[] {
  if (!isIPv4(privateIP)) throw new InvalidSpecError(`vxlan VTEPs need an IPv4 private IP, got ${privateIP}`);
  return privateIP.split('.');
}

export function vtepAddress(privateIP: string): string {
  return `240.${octets(privateIP).slice(1).join('.')}`;
}

export function vtepMac(privateIP: string): string {
  return ['0e', 'ee', ...octets(privateIP).map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}
