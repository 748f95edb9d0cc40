import { z } from 'zod';

/**
 * tunnel-agent's read-only self-report on its health port: the last plan, what each apply had to change in the
 * kernel (drift someone else caused), the VPN peers as the driver sees them, MTUs and L3 enablement. tunnel-agent
 * builds it, `ravenctl diagnose` reads it through the apiserver's pod proxy; both sides hold this one schema.
 */
export const AGENT_DIAGNOSE_PATH = '/debug/diagnose';
export const AGENT_DIAGNOSE_KIND = 'TunnelAgentDiagnose';
/** Drift repairs are counted over this window. */
export const DRIFT_WINDOW_SECONDS = 3600;

export const KERNEL_SUBSYSTEMS = ['links', 'sysctls', 'addresses', 'fdb', 'routes', 'rules', 'ipsets', 'neighbours', 'iptables4', 'iptables6'] as const;
export type KernelSubsystem = (typeof KERNEL_SUBSYSTEMS)[number];

const count = z.number().int().nonnegative();
const changes = z.object({ added: count, removed: count, changed: count });
/** Bounded: whatever a Gateway or the kernel put in these strings, a report stays small. */
const text = z.string().max(1024);
const samples = z.array(text).max(32);

export const agentDiagnoseSchema = z.object({
  kind: z.literal(AGENT_DIAGNOSE_KIND),
  version: z.literal(1),
  node: text,
  generatedAt: z.iso.datetime(),
  driver: z.enum(['wireguard', 'libreswan']),
  /** raven-cfg enable-l3-tunnel as this agent's cache has it. */
  l3Enabled: z.boolean(),
  ready: z.boolean(),
  lastError: text.optional(),
  /** The PSK in use, by its one-way fingerprint (pskFingerprint): never the value. Absent from older agents. */
  psk: z.object({
    source: z.enum(['secret', 'file']),
    /** No fingerprint: this agent has no PSK at all. */
    fingerprint: z.string().regex(/^[0-9a-f]{16}$/).optional(),
    /** Why the last read failed (the agent keeps the PSK it had). */
    readError: text.optional(),
  }).optional(),
  plan: z.object({
    at: z.iso.datetime(),
    role: z.object({ kind: z.enum(['none', 'member', 'gateway']), gateway: text.optional(), gatewayNode: text.optional(), central: z.boolean().optional(), reason: text.optional() }),
    remotePrefixes: count,
    remotePrefixSample: samples,
    routes: count, rules: count, fdb: count, neighbours: count, ipsets: count, links: count, peers: count,
    /** Gateway values left out of the plan, one sentence each. */
    dropped: samples,
  }).optional(),
  mtu: z.object({ underlayDevice: text, underlay: count, vxlan: count.optional(), tunnel: count.optional() }).optional(),
  driftWindowSeconds: count,
  subsystems: z.array(z.object({
    name: z.enum(KERNEL_SUBSYSTEMS),
    lastAppliedAt: z.iso.datetime().optional(),
    /** The kernel was read back on the last apply (not trusted from the previous one). */
    verified: z.boolean(),
    /** The last apply that changed anything, planned or not. */
    lastChange: changes.extend({ at: z.iso.datetime() }).optional(),
    /** Verified applies that had to change the kernel although the plan had not changed, within the window. */
    driftRepairs: count,
    lastDrift: changes.extend({ at: z.iso.datetime(), addedSample: samples, removedSample: samples }).optional(),
    error: text.optional(),
  })),
  peersAt: z.iso.datetime().optional(),
  peers: z.array(z.object({
    gateway: text,
    nodeName: text,
    endpoint: text.optional(),
    relayedVia: text.optional(),
    reachable: z.boolean(),
    rttMs: z.number().nonnegative().optional(),
    /** Seconds since the latest handshake (WireGuard; IPsec when the driver reports one). */
    handshakeAgeSeconds: z.number().nonnegative().optional(),
    rxBytes: count.optional(),
    txBytes: count.optional(),
    /** Why the driver configures no tunnel to this peer. */
    unconfigured: text.optional(),
    lastError: text.optional(),
  })).max(4096),
});

export type AgentDiagnose = z.infer<typeof agentDiagnoseSchema>;
export type AgentSubsystemReport = AgentDiagnose['subsystems'][number];
export type AgentPeerReport = AgentDiagnose['peers'][number];
