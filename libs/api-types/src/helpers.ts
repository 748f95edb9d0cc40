import { DEFAULT_ENDPOINT_PORT, LABELS, type EndpointType } from './constants.ts';
import type { Endpoint, Gateway } from './gateway.ts';

/** The endpoint's port, with upstream's per-type default for an absent port. */
export function endpointPort(ep: Pick<Endpoint, 'type' | 'port'>): number {
  return ep.port ?? DEFAULT_ENDPOINT_PORT[ep.type];
}

export function isExposed(gw: Gateway): boolean {
  return (gw.spec?.exposeType ?? '') !== '';
}

/** The gateway's nodes are those carrying `raven.openyurt.io/gateway=<name>`. */
export function gatewayMemberSelector(gatewayName: string): string {
  return `${LABELS.gateway}=${gatewayName}`;
}

export function activeEndpointsOfType(gw: Gateway, type: EndpointType): Endpoint[] {
  return (gw.status?.activeEndpoints ?? []).filter((e) => e.type === type);
}
