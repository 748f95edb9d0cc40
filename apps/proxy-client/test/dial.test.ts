import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import { Counter, Registry } from 'prom-client';
import { policyDialer } from '../src/dial.ts';
import type { ClientPlan } from '../src/plan.ts';

const plan = (active: boolean): ClientPlan => ({
  active, reason: 'test', servers: [], candidate: true, ports: new Set([10250]),
  members: new Map([['hz-1', '172.16.2.103'], ['hz-6', 'fd00::6']]),
});
const context = { protocol: 'tcp', signal: new AbortController().signal };

describe('policyDialer', () => {
  it.each<[string, ClientPlan | undefined, string, { dialled?: string; result: string; error?: RegExp; fails?: boolean }]>([
    ['a member by name on a proxy port', plan(true), 'hz-1:10250', { dialled: '172.16.2.103:10250', result: 'ok' }],
    ['a member by InternalIP, IPv6 in brackets', plan(true), '[fd00::6]:10250', { dialled: '[fd00::6]:10250', result: 'ok' }],
    ['before any plan', undefined, 'hz-1:10250', { result: 'refused', error: /^dial hz-1:10250: not allowed by raven proxy-client policy: this proxy-client is not serving$/ }],
    ['while idle', plan(false), 'hz-1:10250', { result: 'refused', error: /not serving/ }],
    ['a node of another domain', plan(true), 'qd-1:10250', { result: 'refused', error: /qd-1 is not a node of this proxy-client's domain/ }],
    ['a port that is no proxy port', plan(true), 'hz-1:22', { result: 'refused', error: /port 22 is not a proxy port/ }],
    ['a target that does not answer', plan(true), 'hz-1:10250', { dialled: '172.16.2.103:10250', result: 'failed', error: /ECONNREFUSED/, fails: true }],
  ])('%s', async (_what, current, address, want) => {
    const registry = new Registry();
    const dials = new Counter({ name: 'dials', help: 'h', labelNames: ['result'], registers: [registry] });
    const dialled: string[] = [];
    const connect = async (to: string) => {
      dialled.push(to);
      if (want.fails) throw new Error('connect ECONNREFUSED');
      return {} as Socket;
    };
    const dial = policyDialer({ plan: () => current, guard: { node: 'hz-1', ports: [10267], allowLoopback: false }, connect, log: createLogger('t', { level: 'silent' }), dials });
    const outcome = dial(address, context);
    if (want.error) await expect(outcome).rejects.toThrow(want.error);
    else await expect(outcome).resolves.toBeDefined();
    expect(dialled).toEqual(want.dialled ? [want.dialled] : []);
    expect((await dials.get()).values.map((v) => `${v.labels.result}=${v.value}`)).toEqual([`${want.result}=1`]);
  });
});
