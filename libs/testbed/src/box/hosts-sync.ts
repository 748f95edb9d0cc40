/** Where the box's part of the apiserver's hosts file starts. */
export const HOSTS_MARKER = '# raven-box: edge-tunnel-nodes';
const HOSTS_LINE = /^\d{1,3}(\.\d{1,3}){3}\s+[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/**
 * The apiserver's hosts file: the machine's (`base`) plus the edge-tunnel-nodes lines that are well-formed
 * `address name` pairs. Anything else in the ConfigMap is dropped, never written.
 */
export function hostsWithTunnelNodes(base: string, tunnelNodes: string): string {
  const lines = tunnelNodes.split('\n').map((l) => l.trim()).filter((l) => HOSTS_LINE.test(l));
  return `${base}${HOSTS_MARKER}\n${lines.join('\n')}\n`;
}
