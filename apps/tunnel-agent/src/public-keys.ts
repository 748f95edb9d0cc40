import { ENDPOINT_CONFIG_KEYS, type Endpoint, type Gateway } from '@raven/api-types';

/** The tunnel endpoints' published public keys: remembering the peers', and publishing this node's own. */

/**
 * The last public key seen per tunnel endpoint. `fill` gives a missing `config.publicKey` the last key seen for it:
 * a key wiped by a spec edit comes back when its agent republishes it; until then the peer stays configured and its
 * session lives.
 */
export class KnownKeys {
  private readonly keys = new Map<string, string>();

  fill(gateways: readonly Gateway[]): Gateway[] {
    const keyed = (e: Endpoint, gateway: string): Endpoint => {
      if (e.type !== 'tunnel') return e;
      const id = `${gateway}/${e.nodeName}`;
      const key = e.config?.[ENDPOINT_CONFIG_KEYS.publicKey];
      if (key) {
        this.keys.set(id, key);
        return e;
      }
      const known = this.keys.get(id);
      return known ? { ...e, config: { ...e.config, [ENDPOINT_CONFIG_KEYS.publicKey]: known } } : e;
    };
    return gateways.map((g) => {
      const name = g.metadata.name;
      // Status first: it carries the key the control plane last elected with.
      const activeEndpoints = g.status?.activeEndpoints?.map((e) => keyed(e, name));
      const endpoints = g.spec?.endpoints?.map((e) => keyed(e, name));
      return { ...g, spec: g.spec && { ...g.spec, endpoints }, status: g.status && { ...g.status, activeEndpoints } };
    });
  }
}

export type JsonPatch = Array<{ op: 'test' | 'add'; path: string; value: unknown }>;

/**
 * The JSON patch that publishes `publicKey` in this node's own tunnel endpoint of its Gateway's spec, where peers
 * (through the status) read it; undefined when there is no such endpoint or it already carries the key. The patch
 * tests the endpoint's node first: if the endpoint list moved under us it fails, and the next reconcile retries.
 */
export function publicKeyPatch(gateway: Gateway, nodeName: string, publicKey: string): JsonPatch | undefined {
  const endpoints = gateway.spec?.endpoints ?? [];
  const index = endpoints.findIndex((e) => e.type === 'tunnel' && e.nodeName === nodeName);
  const endpoint = endpoints[index];
  if (!endpoint || endpoint.config?.[ENDPOINT_CONFIG_KEYS.publicKey] === publicKey) return undefined;
  const base = `/spec/endpoints/${index}`;
  return [
    { op: 'test', path: `${base}/nodeName`, value: nodeName },
    endpoint.config
      ? { op: 'add', path: `${base}/config/${ENDPOINT_CONFIG_KEYS.publicKey}`, value: publicKey }
      : { op: 'add', path: `${base}/config`, value: { [ENDPOINT_CONFIG_KEYS.publicKey]: publicKey } },
  ];
}

/**
 * The JSON patch that records this node's classified NAT type in its own tunnel endpoint's `natType` (upstream's
 * field and values); undefined when there is no such endpoint or it already says so.
 */
export function natTypePatch(gateway: Gateway, nodeName: string, natType: string): JsonPatch | undefined {
  const endpoints = gateway.spec?.endpoints ?? [];
  const index = endpoints.findIndex((e) => e.type === 'tunnel' && e.nodeName === nodeName);
  const endpoint = endpoints[index];
  if (!endpoint || endpoint.natType === natType) return undefined;
  const base = `/spec/endpoints/${index}`;
  return [{ op: 'test', path: `${base}/nodeName`, value: nodeName }, { op: 'add', path: `${base}/natType`, value: natType }];
}
