import { z } from 'zod';
import { ENDPOINT_TYPES, EXPOSE_TYPES, GROUP, GATEWAY_KIND, V1ALPHA1, V1BETA1 } from './constants.ts';
import { DNS1123_SUBDOMAIN_PATTERN, isDnsSubdomain, parseIp, parseWireguardKey, WIREGUARD_KEY_PATTERN } from './net.ts';
import { isValidPortList } from './ports.ts';

/**
 * Gateway `raven.openyurt.io` v1alpha1 and v1beta1: field-for-field compatible with upstream.
 * These schemas are the single source of truth: the CRD's OpenAPI schema is generated from them
 * (see crd.ts), and every process parses Gateways it reads from the API with them.
 * Validation that the apiserver must enforce is expressed here as constraints or as CEL rules
 * carried in `.meta({ 'x-kubernetes-validations': [...] })`.
 */

type CelRule = { rule: string; message: string; fieldPath?: string; reason?: string };
const cel = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

export const MAX_ENDPOINTS = 64;
export const MAX_STATUS_NODES = 10_000;

/**
 * A rule the apiserver enforces (CEL in the generated CRD) and every reader enforces too (the same check in zod),
 * with one message that reads as a sentence about the field.
 */
function checked<T extends z.ZodType>(schema: T, rule: string, message: string, test: (value: z.output<T>) => boolean, meta: Record<string, unknown> = {}) {
  return schema.refine(test, { message }).meta({ ...meta, ...cel({ rule, message }) });
}

const port = z.number().int().min(1).max(65535);
const nodeName = checked(
  z.string().min(1).max(253),
  `self.matches('${DNS1123_SUBDOMAIN_PATTERN.replace(/\\/g, '\\\\')}')`,
  'must be a valid node name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
  isDnsSubdomain,
);
// One rule: CEL's && does not evaluate int() once the pattern has failed, so no conversion error reaches the user.
const portList = checked(
  z.string().max(512),
  "self == '' || (self.matches('^[0-9]{1,5}(,[0-9]{1,5})*$') && self.split(',').all(p, int(p) >= 1 && int(p) <= 65535))",
  'must be a comma-separated list of port numbers within 1-65535 (empty means no ports)',
  isValidPortList,
);
const ipAddress = checked(z.string().max(64), "self == '' || isIP(self)", 'must be a valid IPv4 or IPv6 address', (s) => s === '' || !!parseIp(s));
const endpointConfig = checked(
  z.record(z.string().max(253), z.string().max(4096)),
  `!('publicKey' in self) || self['publicKey'].matches('${WIREGUARD_KEY_PATTERN}')`,
  'config.publicKey must be a WireGuard public key: the base64 form of exactly 32 bytes',
  (c) => c.publicKey === undefined || !!parseWireguardKey(c.publicKey),
  { maxProperties: 64 },
);

const labelSelector = z.object({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(
      z.object({
        key: z.string(),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});
export type LabelSelector = z.infer<typeof labelSelector>;

/** Endpoint fields common to both versions; v1beta1 requires `type`, v1alpha1 leaves it optional (defaulting to tunnel). */
const endpointFields = {
  nodeName,
  port: port.optional(),
  underNAT: z.boolean().optional(),
  natType: z.string().max(64).optional(),
  publicIP: ipAddress.optional(),
  publicPort: port.optional(),
  config: endpointConfig.optional(),
};

export const endpointSchema = z.object({ ...endpointFields, type: z.enum(ENDPOINT_TYPES) });
export type Endpoint = z.infer<typeof endpointSchema>;
const endpointV1alpha1Schema = z.object({ ...endpointFields, type: z.enum(ENDPOINT_TYPES).optional() });
export type EndpointV1alpha1 = z.infer<typeof endpointV1alpha1Schema>;

/**
 * Status is written by gateway-pickup (copied from the checked spec) and, for `connections`, by agents whose writes the
 * admission policy confines. Its entries carry no CEL (the apiserver's cost budget for 10,000 nodes would not allow
 * it) and parse leniently: readers such as the tunnel-agent check each value and drop a bad entry alone.
 */
const lenientEndpointFields = {
  ...endpointFields,
  nodeName: z.string().min(1).max(253),
  publicIP: z.string().max(64).optional(),
  config: z.record(z.string().max(253), z.string().max(4096)).optional().meta({ maxProperties: 64 }),
};
const statusEndpointSchema = z.object({ ...lenientEndpointFields, type: z.enum(ENDPOINT_TYPES) });
const statusEndpointV1alpha1Schema = z.object({ ...lenientEndpointFields, type: z.enum(ENDPOINT_TYPES).optional() });

// Upstream gives Replicas no default, so a Gateway that omits them never elects anything; ours default to 1.
export const proxyConfigSchema = z.object({
  Replicas: z.number().int().min(0).max(100).default(1),
  proxyHTTPPort: portList.optional(),
  proxyHTTPSPort: portList.optional(),
});
export type ProxyConfig = z.infer<typeof proxyConfigSchema>;

export const tunnelConfigSchema = z.object({ Replicas: z.number().int().min(0).max(1).default(1) });
export type TunnelConfig = z.infer<typeof tunnelConfigSchema>;

// `has(e.type) ? e.type : 'tunnel'` makes one rule serve both versions (v1alpha1 endpoints default to tunnel).
const endpointTypeOf = (v: string) => `(has(${v}.type) ? ${v}.type : 'tunnel')`;
const isUnderNAT = (v: string) => `(has(${v}.underNAT) && ${v}.underNAT)`;
const specRules = cel(
  {
    rule: `!has(self.endpoints) || self.endpoints.all(e, self.endpoints.exists_one(f, f.nodeName == e.nodeName && ${endpointTypeOf('f')} == ${endpointTypeOf('e')}))`,
    message: 'each (nodeName, type) pair may appear only once',
    fieldPath: '.endpoints',
  },
  {
    rule: `!has(self.exposeType) || self.exposeType == '' || !has(self.endpoints) || self.endpoints.all(e, !${isUnderNAT('e')})`,
    message: 'an exposed gateway (exposeType set) must not have underNAT endpoints',
    fieldPath: '.endpoints',
  },
  {
    rule: `!has(self.endpoints) || size(self.endpoints) == 0 || self.endpoints.all(e, ${isUnderNAT('e')} == ${isUnderNAT('self.endpoints[0]')})`,
    message: 'all endpoints must have the same underNAT value',
    fieldPath: '.endpoints',
  },
  {
    // Upstream's check, except that a Gateway with no proxy endpoint at all keeps the defaulted Replicas.
    rule: `!has(self.proxyConfig) || !has(self.endpoints) || !self.endpoints.exists(e, ${endpointTypeOf('e')} == 'proxy') || self.proxyConfig.Replicas <= self.endpoints.filter(e, ${endpointTypeOf('e')} == 'proxy').size()`,
    message: 'proxyConfig.Replicas must not exceed the number of proxy endpoints',
    fieldPath: '.proxyConfig.Replicas',
  },
);

const specFields = {
  nodeSelector: labelSelector.optional(),
  proxyConfig: proxyConfigSchema.default({ Replicas: 1 }),
  tunnelConfig: tunnelConfigSchema.default({ Replicas: 1 }),
  exposeType: z.enum(EXPOSE_TYPES).optional(),
};

export const gatewaySpecSchema = z
  .object({ ...specFields, endpoints: z.array(endpointSchema).max(MAX_ENDPOINTS).optional() })
  .meta(specRules);
export type GatewaySpec = z.infer<typeof gatewaySpecSchema>;

const gatewaySpecV1alpha1Schema = z
  .object({ ...specFields, endpoints: z.array(endpointV1alpha1Schema).max(MAX_ENDPOINTS).optional() })
  .meta(specRules);

export const nodeInfoSchema = z.object({
  nodeName: z.string().min(1).max(253),
  privateIP: z.string().max(64).optional(),
  subnets: z.array(z.string().max(64)).max(256).optional(),
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

export const conditionSchema = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof conditionSchema>;

/** A tunnel endpoint's view of one peer gateway, reported by its agent (like Submariner's connection status). */
export const connectionSchema = z.object({
  gateway: z.string().max(253),
  nodeName: z.string().min(1).max(253),
  endpoint: z.string().max(128).optional(),
  status: z.enum(['Connected', 'Connecting', 'Error']),
  statusMessage: z.string().max(1024).optional(),
  latencyRTT: z
    .object({ last: z.string().max(32), min: z.string().max(32), average: z.string().max(32), max: z.string().max(32) })
    .optional(),
  relayedVia: z.string().max(253).optional(),
  /** Why a peer behind NAT, like this gateway, is relayed rather than reached directly (NAT traversal). */
  relayReason: z.string().max(256).optional(),
});
export type Connection = z.infer<typeof connectionSchema>;

const statusFields = {
  nodes: z.array(nodeInfoSchema).max(MAX_STATUS_NODES).optional(),
  activeEndpoints: z.array(statusEndpointSchema).max(MAX_ENDPOINTS).optional(),
  conditions: z.array(conditionSchema).max(16).optional(),
  connections: z.array(connectionSchema).max(1024).optional(),
};
export const gatewayStatusSchema = z.object(statusFields);
export type GatewayStatus = z.infer<typeof gatewayStatusSchema>;
const gatewayStatusV1alpha1Schema = z.object({ ...statusFields, activeEndpoint: statusEndpointV1alpha1Schema.optional() });

export const objectMetaSchema = z.looseObject({
  name: z.string(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  creationTimestamp: z.union([z.string(), z.date()]).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ObjectMeta = z.infer<typeof objectMetaSchema>;

export const gatewayV1beta1Schema = z.object({
  apiVersion: z.literal(`${GROUP}/${V1BETA1}`),
  kind: z.literal(GATEWAY_KIND),
  metadata: objectMetaSchema,
  spec: gatewaySpecSchema.optional(),
  status: gatewayStatusSchema.optional(),
});
export type Gateway = z.infer<typeof gatewayV1beta1Schema>;

/**
 * v1alpha1 as upstream defines it (`endpoints[{nodeName, underNAT, publicIP, config}]`, `status.activeEndpoint`),
 * also accepting every v1beta1 field so that manifests written as v1alpha1 with v1beta1 fields
 * (as the user walkthrough has them) keep their meaning, and v1beta1 → v1alpha1 → v1beta1 loses nothing.
 */
export const gatewayV1alpha1Schema = z.object({
  apiVersion: z.literal(`${GROUP}/${V1ALPHA1}`),
  kind: z.literal(GATEWAY_KIND),
  metadata: objectMetaSchema,
  spec: gatewaySpecV1alpha1Schema.optional(),
  status: gatewayStatusV1alpha1Schema.optional(),
});
export type GatewayV1alpha1 = z.infer<typeof gatewayV1alpha1Schema>;

/** Schemas of the bodies (spec, status) that the CRD generator turns into each version's OpenAPI schema. */
export const crdVersionSchemas = {
  [V1ALPHA1]: { spec: gatewaySpecV1alpha1Schema, status: gatewayStatusV1alpha1Schema },
  [V1BETA1]: { spec: gatewaySpecSchema, status: gatewayStatusSchema },
} as const;
