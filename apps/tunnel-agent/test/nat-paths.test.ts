import { describe, expect, it } from 'vitest';
import type { NatType } from '@raven/api-types';
import { NAT_PATH_TIMING, natPathOf, pairRefusal, parseNatType, stepNatPath, type NatPathState, type NatPeerFacts } from '../src/nat/paths.ts';

describe('pairRefusal (upstream Raven\'s pairing rules)', () => {
  it.each<[NatType | undefined, NatType | undefined, string | undefined]>([
    ['PortRestricted', 'PortRestricted', undefined],
    ['FullCone', 'Symmetric', undefined],
    ['Restricted', 'Symmetric', undefined],
    ['Symmetric', 'Restricted', undefined],
    ['Symmetric', 'Symmetric', 'symmetric NAT on both sides'],
    ['Symmetric', 'PortRestricted', 'symmetric NAT here and port-restricted NAT at the peer'],
    ['PortRestricted', 'Symmetric', 'port-restricted NAT here and symmetric NAT at the peer'],
    [undefined, 'FullCone', 'this gateway\'s NAT type is not known yet'],
    ['Unknown', 'FullCone', 'this gateway\'s NAT type is not known yet'],
    ['FullCone', 'Unknown', 'the peer\'s NAT type is not known yet'],
  ])('%s here, %s at the peer: %s', (local, peer, want) => {
    expect(pairRefusal(local, peer)).toBe(want);
  });
});

describe('parseNatType', () => {
  it.each([['PortRestricted', 'PortRestricted'], ['Symmetric', 'Symmetric'], ['symmetric', undefined], ['', undefined], [undefined, undefined], ['FullCone\n', undefined]])('%j → %j', (raw, want) => {
    expect(parseNatType(raw)).toBe(want);
  });
});

const EP = '198.18.0.12:4500';
const OWN = '198.18.0.21:4500';
const CONE: NatPeerFacts = { localNat: 'PortRestricted', peerNat: 'PortRestricted', peerEndpoint: EP, localEndpoint: OWN, peerHasKey: true };
const failed = (reason: string, retryAt: number, failures: number): NatPathState => ({ kind: 'relayed', reason, retryAt, failures, triedMappings: `${OWN} ${EP}` });
const T0 = 1_000_000;
const LAN = '172.16.2.110:4500';
const punching = (since: number, failures = 0, endpoint = EP, via: 'lan' | 'internet' = 'internet'): NatPathState => ({ kind: 'punching', since, endpoint, via, failures });
const direct = (since: number, failures = 0, endpoint = EP, via: 'lan' | 'internet' = 'internet'): NatPathState => ({ kind: 'direct', since, endpoint, via, failures });
const SYM: NatPeerFacts = { ...CONE, localNat: 'Symmetric', peerNat: 'Symmetric' };

describe('stepNatPath', () => {
  it.each<[string, NatPathState | undefined, NatPeerFacts, { latestHandshakeMs?: number; lastReplyMs?: number }, number, NatPathState]>([
    ['cone NATs start punching at once', undefined, CONE, {}, T0, punching(T0)],
    ['symmetric on both sides stays relayed, saying why', undefined, { ...CONE, localNat: 'Symmetric', peerNat: 'Symmetric' }, {}, T0,
      { kind: 'relayed', reason: 'symmetric NAT on both sides', failures: 0 }],
    ['no observed mapping yet', undefined, { ...CONE, peerEndpoint: undefined }, {}, T0,
      { kind: 'relayed', reason: 'the central gateway has not observed the peer\'s public mapping yet', failures: 0 }],
    ['our own mapping not observed yet: no internet punch (one public address or not is still unknown)', undefined, { ...CONE, localEndpoint: undefined }, {}, T0,
      { kind: 'relayed', reason: 'the central gateway has not observed this gateway\'s public mapping yet', failures: 0 }],
    ['no key yet', undefined, { ...CONE, peerHasKey: false }, {}, T0, { kind: 'relayed', reason: 'the peer has not published its public key', failures: 0 }],
    ['a handshake in the punch\'s second makes it direct', punching(T0 + 400), CONE, { latestHandshakeMs: T0 }, T0 + 2_000, direct(T0 + 2_000)],
    ['a handshake older than the punch does not', punching(T0 + 1_400), CONE, { latestHandshakeMs: T0 }, T0 + 2_000, punching(T0 + 1_400)],
    ['a moved mapping restarts the punch towards it', punching(T0), { ...CONE, peerEndpoint: '198.18.0.99:4500' }, {}, T0 + 2_000, punching(T0 + 2_000, 0, '198.18.0.99:4500')],
    ['a punch times out after 15 s and backs off 10 s', punching(T0), CONE, {}, T0 + 15_000,
      failed('punch timed out after 15 s', T0 + 25_000, 1)],
    ['the backoff doubles, up to 60 s', punching(T0, 3), CONE, {}, T0 + 15_000,
      failed('punch timed out after 15 s', T0 + 15_000 + 60_000, 4)],
    ['a relayed path waits for its retry', failed('x', T0 + 5_000, 1), CONE, {}, T0 + 4_999, failed('x', T0 + 5_000, 1)],
    ['and punches again after it', failed('x', T0 + 5_000, 1), CONE, {}, T0 + 5_000, punching(T0 + 5_000, 1)],
    ['or at once when the peer\'s mapping moved (a new public IP)', failed('x', T0 + 40_000, 3), { ...CONE, peerEndpoint: '198.18.0.77:4500' }, {}, T0 + 1_000, punching(T0 + 1_000, 3, '198.18.0.77:4500')],
    ['or at once when our own mapping moved', failed('x', T0 + 40_000, 3), { ...CONE, localEndpoint: '198.18.0.22:4500' }, {}, T0 + 1_000, punching(T0 + 1_000, 3)],
    ['a direct path that answers stays', direct(T0), CONE, { lastReplyMs: T0 + 9_000 }, T0 + 10_000, direct(T0)],
    ['a new direct path has 1.5 s before its first answer counts', direct(T0), CONE, {}, T0 + 1_499, direct(T0)],
    ['a direct path silent for 1.5 s falls back', direct(T0), CONE, { lastReplyMs: T0 + 8_500 }, T0 + 10_000,
      failed('the direct path stopped answering (nothing for 1.5 s)', T0 + 20_000, 1)],
    ['a direct path up for a minute forgets its failures', direct(T0, 2), CONE, { lastReplyMs: T0 + 60_000 }, T0 + 60_100, direct(T0, 0)],
    ['a peer that turns symmetric-symmetric goes back to the relay', direct(T0), SYM, {}, T0 + 100,
      { kind: 'relayed', reason: 'symmetric NAT on both sides', failures: 0 }],
    // Behind one public address: the LAN first, whatever the NAT types, proven only by a handshake.
    ['one public address: punch to the peer\'s LAN address first', undefined, { ...SYM, peerLanEndpoint: LAN }, {}, T0, punching(T0, 0, LAN, 'lan')],
    ['a LAN handshake makes a LAN path', punching(T0, 0, LAN, 'lan'), { ...SYM, peerLanEndpoint: LAN }, { latestHandshakeMs: T0 }, T0 + 500, direct(T0 + 500, 0, LAN, 'lan')],
    ['a LAN address gets 8 s (more than one WireGuard handshake retry)', punching(T0, 0, LAN, 'lan'), { ...CONE, peerLanEndpoint: LAN }, {}, T0 + 7_999, punching(T0, 0, LAN, 'lan')],
    ['a silent LAN address: on to the internet when the NATs allow it', punching(T0, 0, LAN, 'lan'), { ...CONE, peerLanEndpoint: LAN }, {}, T0 + 8_000, punching(T0 + 8_000)],
    ['a silent LAN address with symmetric NATs: relayed, saying both', punching(T0, 0, LAN, 'lan'), { ...SYM, peerLanEndpoint: LAN }, {}, T0 + 8_000,
      failed(`the peer's LAN address ${LAN} did not answer, and symmetric NAT on both sides`, T0 + 18_000, 1)],
    ['a LAN path outlives a NAT that turned symmetric', direct(T0, 0, LAN, 'lan'), { ...SYM, peerLanEndpoint: LAN }, { lastReplyMs: T0 + 900 }, T0 + 1_000, direct(T0, 0, LAN, 'lan')],
    ['a LAN path that stops answering falls back', direct(T0, 0, LAN, 'lan'), { ...SYM, peerLanEndpoint: LAN }, { lastReplyMs: T0 + 100 }, T0 + 1_600,
      failed('the direct path stopped answering (nothing for 1.5 s)', T0 + 11_600, 1)],
    ['an internet punch turns to the LAN as soon as the peer\'s LAN address is offered', punching(T0), { ...CONE, peerLanEndpoint: LAN }, {}, T0 + 3_000, punching(T0 + 3_000, 0, LAN, 'lan')],
    ['no LAN address any more while punching to it: start over', punching(T0, 0, LAN, 'lan'), CONE, {}, T0 + 1_000, punching(T0 + 1_000)],
  ])('%s', (_what, prev, facts, seen, now, want) => {
    expect(stepNatPath(prev, facts, seen, now, NAT_PATH_TIMING)).toEqual(want);
  });

  it('keeps the same object when nothing changes (the agent replans only on change)', () => {
    const state = punching(T0);
    expect(stepNatPath(state, CONE, {}, T0 + 1_000)).toBe(state);
    const refused = stepNatPath(undefined, SYM, {}, T0);
    expect(stepNatPath(refused, SYM, {}, T0 + 300)).toBe(refused);
  });

  it('gives the planner only punching and direct paths', () => {
    expect([natPathOf(undefined), natPathOf({ kind: 'relayed', reason: 'x', failures: 0 }), natPathOf(punching(T0)), natPathOf(direct(T0))])
      .toEqual([undefined, undefined, { mode: 'punching', endpoint: EP, via: 'internet' }, { mode: 'direct', endpoint: EP, via: 'internet' }]);
  });
});
