import { DEFAULT_ENDPOINT_PORT, GATEWAY_KIND, GROUP, V1ALPHA1, V1BETA1 } from './constants.ts';
import type { Endpoint, EndpointV1alpha1, Gateway, GatewayV1alpha1 } from './gateway.ts';

/**
 * v1alpha1 → v1beta1, following upstream: an endpoint without a type becomes `type: tunnel, port: 4500`, and
 * `status.activeEndpoint` becomes a one-element `activeEndpoints` list. v1beta1 fields that a v1alpha1 object
 * already carries are kept as they are (they take precedence over the v1alpha1-only `activeEndpoint`).
 */
export function toV1beta1(gw: GatewayV1alpha1): Gateway {
  const { spec, status } = gw;
  const out: Gateway = { apiVersion: `${GROUP}/${V1BETA1}`, kind: GATEWAY_KIND, metadata: gw.metadata };
  if (spec) out.spec = { ...spec, endpoints: spec.endpoints?.map(endpointToV1beta1) };
  if (status) {
    const { activeEndpoint, ...rest } = status;
    out.status = { ...rest };
    if (!rest.activeEndpoints && activeEndpoint) out.status.activeEndpoints = [endpointToV1beta1(activeEndpoint)];
  }
  return stripUndefined(out);
}

/**
 * v1beta1 → v1alpha1. Every field is kept (our v1alpha1 schema accepts v1beta1's), so a round trip loses nothing.
 * `status.activeEndpoint`, which v1alpha1 clients read, is the active tunnel endpoint (the only kind v1alpha1 knew),
 * or the first active endpoint when no tunnel endpoint is active.
 */
export function toV1alpha1(gw: Gateway): GatewayV1alpha1 {
  const out: GatewayV1alpha1 = { apiVersion: `${GROUP}/${V1ALPHA1}`, kind: GATEWAY_KIND, metadata: gw.metadata };
  if (gw.spec) out.spec = { ...gw.spec };
  if (gw.status) {
    const active = gw.status.activeEndpoints ?? [];
    const primary = active.find((e) => e.type === 'tunnel') ?? active[0];
    out.status = { ...gw.status, ...(primary ? { activeEndpoint: primary } : {}) };
  }
  return stripUndefined(out);
}

function endpointToV1beta1(ep: EndpointV1alpha1): Endpoint {
  if (ep.type) return { ...ep, type: ep.type };
  return { ...ep, type: 'tunnel', port: ep.port ?? DEFAULT_ENDPOINT_PORT.tunnel };
}

/** Drops keys whose value is undefined, recursively, so converted objects serialise exactly like their input. */
export function stripUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map(stripUndefined) as T;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, stripUndefined(v)]),
    ) as T;
  }
  return value;
}
