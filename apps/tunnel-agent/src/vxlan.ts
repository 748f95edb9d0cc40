import { isIPv4 } from 'node:net';

/**
 * VXLAN endpoint identities are derived from the node's private IP, so every node knows every other node's
 * without exchanging anything: the VTEP address replaces the first octet with 240 (upstream's scheme), and the
 * MAC is a locally administered unicast address carrying the four octets of the private IP.
 */
export function vtepAddress(privateIP: string): string {
  if (!isIPv4(privateIP)) throw new Error(`vxlan VTEPs need an IPv4 private IP, got ${privateIP}`);
  return `240.${privateIP.split('.').slice(1).join('.')}`;
}

export function vtepMac(privateIP: string): string {
  if (!isIPv4(privateIP)) throw new Error(`vxlan VTEPs need an IPv4 private IP, got ${privateIP}`);
  return ['0e', 'ee', ...privateIP.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}
