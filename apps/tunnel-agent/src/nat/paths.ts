import { NAT_TYPES, type NatType } from '@raven/api-types';

/**
 * Direct paths between two NATed gateways, decided per peer gateway by a small state machine that both ends run on
 * the same facts (their NAT types, and the mappings the central gateway observed), so they start punching together
 * without talking to each other first. Pure: the agent feeds it observations and applies what it returns.
 */
export type NatPathState =
  | { kind: 'relayed'; reason: string; retryAt?: number; failures: number; triedMappings?: string }
  | { kind: 'punching'; since: number; endpoint: string; via: PathVia; failures: number }
  | { kind: 'direct'; since: number; endpoint: string; via: PathVia; failures: number };

/** A direct path runs over the LAN both gateways share, or across the internet through both NATs. */
export type PathVia = 'lan' | 'internet';

/** What the cluster says about one NATed peer, as this gateway sees it. */
export interface NatPeerFacts {
  localNat?: NatType;
  peerNat?: NatType;
  /** The peer's public mapping of its tunnel port, as the central gateway observed it (`ip:port`). */
  peerEndpoint?: string;
  /** This gateway's own mapping as the central gateway observed it. */
  localEndpoint?: string;
  peerHasKey: boolean;
  /**
   * The peer's private address and tunnel port, offered when the central gateway sees both gateways behind the same
   * public address (one NAT, so most likely one LAN). Tried first, whatever the NAT types: only a handshake proves it.
   */
  peerLanEndpoint?: string;
}

/** What the data path shows of the attempt: the WireGuard session to the peer, and answers to direct probes. */
export interface NatPathObservation {
  /** WireGuard reports handshakes to the second. */
  latestHandshakeMs?: number;
  /** When a probe sent over the direct path last came back. */
  lastReplyMs?: number;
}

export interface NatPathTiming {
  punchTimeoutMs: number;
  /**
   * How long a peer's LAN address gets to answer before punching across the internet instead: more than WireGuard's
   * 5 s handshake retry, so a lost first initiation gets a second.
   */
  lanTimeoutMs: number;
  /** A direct path that answers nothing for this long falls back to the relay. */
  deadAfterMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** A direct path up this long forgets earlier failures. */
  stableAfterMs: number;
}

export const NAT_PATH_TIMING: NatPathTiming = { punchTimeoutMs: 15_000, lanTimeoutMs: 8_000, deadAfterMs: 1_500, backoffMinMs: 10_000, backoffMaxMs: 60_000, stableAfterMs: 60_000 };

/** A Gateway's natType field is free text from the spec: only upstream's values count, anything else is unknown. */
export function parseNatType(value: string | undefined): NatType | undefined {
  return (NAT_TYPES as readonly string[]).includes(value ?? '') ? (value as NatType) : undefined;
}

const NAT_WORDS: Record<NatType, string> = {
  FullCone: 'full-cone', Restricted: 'restricted', PortRestricted: 'port-restricted', Symmetric: 'symmetric', Unknown: 'unknown',
};

/**
 * Why two NAT types cannot punch, as upstream Raven rules: a symmetric NAT's mapping towards the peer is unknown in
 * advance, so only a peer that accepts packets from any port of a known address can answer it.
 */
export function pairRefusal(local: NatType | undefined, peer: NatType | undefined): string | undefined {
  if (!local || local === 'Unknown') return 'this gateway\'s NAT type is not known yet';
  if (!peer || peer === 'Unknown') return 'the peer\'s NAT type is not known yet';
  const pair = new Set([local, peer]);
  if (local === 'Symmetric' && peer === 'Symmetric') return 'symmetric NAT on both sides';
  if (pair.has('Symmetric') && pair.has('PortRestricted')) {
    return `${NAT_WORDS[local]} NAT here and ${NAT_WORDS[peer]} NAT at the peer`;
  }
  return undefined;
}

const backoff = (failures: number, t: NatPathTiming) => Math.min(t.backoffMaxMs, t.backoffMinMs * 2 ** Math.max(0, failures - 1));

/** The next state of one peer's path, from the previous one, the facts and what the data path shows now. */
export function stepNatPath(
  prev: NatPathState | undefined, facts: NatPeerFacts, seen: NatPathObservation, now: number, timing: NatPathTiming = NAT_PATH_TIMING,
): NatPathState {
  const failures = prev?.failures ?? 0;
  const relayed = (reason: string): NatPathState =>
    (prev?.kind === 'relayed' && prev.reason === reason && prev.retryAt === undefined ? prev : { kind: 'relayed', reason, failures });
  if (!facts.peerHasKey) return relayed('the peer has not published its public key');
  // Without our own mapping, "behind the same public address" is undecidable: punching the peer's public mapping then
  // could be a hairpin through our own NAT while the peer, knowing both, tries the LAN.
  const refusal = pairRefusal(facts.localNat, facts.peerNat)
    ?? (!facts.peerEndpoint ? 'the central gateway has not observed the peer\'s public mapping yet' : undefined)
    ?? (!facts.localEndpoint ? 'the central gateway has not observed this gateway\'s public mapping yet' : undefined);
  const targetOf = (via: PathVia) => (via === 'lan' ? facts.peerLanEndpoint : refusal ? undefined : facts.peerEndpoint);
  const punch = (via: PathVia): NatPathState | undefined => {
    const endpoint = targetOf(via);
    return endpoint ? { kind: 'punching', since: now, endpoint, via, failures } : undefined;
  };
  const fromScratch = () => punch('lan') ?? punch('internet') ?? relayed(refusal!);
  // A failed attempt waits out its backoff unless either mapping moves: then the failure says nothing about the next.
  const mappings = `${facts.localEndpoint ?? ''} ${facts.peerEndpoint ?? ''}`;
  const fail = (reason: string): NatPathState => ({ kind: 'relayed', reason, retryAt: now + backoff(failures + 1, timing), failures: failures + 1, triedMappings: mappings });
  switch (prev?.kind) {
    case undefined:
      return fromScratch();
    case 'relayed':
      return prev.retryAt !== undefined && now < prev.retryAt && prev.triedMappings === mappings ? prev : fromScratch();
    case 'punching': {
      // A LAN address that appears (both mappings now known, one public address) wins over an internet punch.
      if (prev.via === 'internet' && facts.peerLanEndpoint) return punch('lan')!;
      const endpoint = targetOf(prev.via);
      if (!endpoint) return prev.via === 'lan' ? fromScratch() : relayed(refusal!);
      if (endpoint !== prev.endpoint) return { ...prev, since: now, endpoint };
      // The peer entry is new when punching starts, so any handshake is this attempt's (wg shows whole seconds).
      if ((seen.latestHandshakeMs ?? 0) >= Math.floor(prev.since / 1000) * 1000) return { ...prev, kind: 'direct', since: now };
      if (prev.via === 'lan' && now - prev.since >= timing.lanTimeoutMs) {
        return punch('internet') ?? fail(`the peer's LAN address ${prev.endpoint} did not answer, and ${refusal}`);
      }
      if (now - prev.since >= timing.punchTimeoutMs) return fail(`punch timed out after ${Math.round(timing.punchTimeoutMs / 1000)} s`);
      return prev;
    }
    case 'direct': {
      // Across the internet the NAT types must still allow it; a LAN path lives as long as it answers.
      if (prev.via === 'internet' && refusal) return relayed(refusal);
      const lastSign = Math.max(prev.since, seen.lastReplyMs ?? 0);
      if (now - lastSign >= timing.deadAfterMs) return fail(`the direct path stopped answering (nothing for ${(timing.deadAfterMs / 1000).toFixed(1)} s)`);
      if (failures > 0 && now - prev.since >= timing.stableAfterMs) return { ...prev, failures: 0 };
      return prev;
    }
  }
}

/** The plan's view of a path: only punching and direct ones add a peer. */
export type NatPath = { mode: 'punching' | 'direct'; endpoint: string; via: PathVia };

export function natPathOf(state: NatPathState | undefined): NatPath | undefined {
  return state && state.kind !== 'relayed' ? { mode: state.kind, endpoint: state.endpoint, via: state.via } : undefined;
}
