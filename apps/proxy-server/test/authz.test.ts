import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { AuthorizationError, NodeProxyAuthorizer, callerOfCertificate, verbOfMethod } from '../src/authz.ts';

const cert = (subject: Record<string, string | string[]>) => ({ subject }) as unknown as PeerCertificate;

describe('callerOfCertificate', () => {
  it.each([
    [{ CN: 'system:kube-apiserver-kubelet-client', O: 'kubeadm:cluster-admins' }, { user: 'system:kube-apiserver-kubelet-client', groups: ['kubeadm:cluster-admins'] }],
    [{ CN: 'system:node:edge-1', O: ['system:nodes', 'extra'] }, { user: 'system:node:edge-1', groups: ['system:nodes', 'extra'] }],
    [{ CN: 'alone' }, { user: 'alone', groups: [] }],
    [{ O: 'system:masters' }, undefined],
    [{ CN: ['a', 'b'] }, undefined],
  ])('%j -> %j', (subject, want) => expect(callerOfCertificate(cert(subject))).toEqual(want));

  it('no certificate, no caller', () => expect(callerOfCertificate(undefined)).toBeUndefined());
});

describe('verbOfMethod (the kubelet\'s mapping)', () => {
  it.each([['GET', 'get'], ['HEAD', 'get'], ['POST', 'create'], ['PUT', 'update'], ['PATCH', 'patch'], ['DELETE', 'delete'], ['OPTIONS', 'get']])('%s -> %s', (m, v) => expect(verbOfMethod(m)).toBe(v));
});

describe('NodeProxyAuthorizer', () => {
  const setup = (answer: (spec: { user: string; resourceAttributes: { verb: string; name: string } }) => unknown) => {
    const reviews: unknown[] = [];
    let now = 0;
    const authz = new NodeProxyAuthorizer({
      review: async (body) => {
        reviews.push(body);
        return answer((body as { spec: { user: string; resourceAttributes: { verb: string; name: string } } }).spec);
      },
      allowedTtlMs: 1_000, deniedTtlMs: 100, now: () => now,
    });
    return { authz, reviews, advance: (ms: number) => (now += ms) };
  };

  it('asks for nodes/proxy of the target node with the verb and the caller\'s user and groups', async () => {
    const { authz, reviews } = setup(() => ({ status: { allowed: true } }));
    expect(await authz.authorize({ user: 'u', groups: ['g'] }, 'create', 'edge-1')).toEqual({ allowed: true, reason: 'allowed' });
    expect(reviews).toEqual([{
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: { user: 'u', groups: ['g'], resourceAttributes: { verb: 'create', resource: 'nodes', subresource: 'proxy', name: 'edge-1' } },
    }]);
  });

  it('caches answers per caller, verb and node: allowed longer than denied; concurrent asks share one review', async () => {
    const { authz, reviews, advance } = setup((spec) => ({ status: { allowed: spec.user === 'admin', reason: spec.user === 'admin' ? '' : 'RBAC: no rule' } }));
    await Promise.all(Array.from({ length: 50 }, () => authz.authorize({ user: 'admin', groups: [] }, 'get', 'n')));
    expect(reviews).toHaveLength(1);
    expect(await authz.authorize({ user: 'mallory', groups: [] }, 'get', 'n')).toEqual({ allowed: false, reason: 'RBAC: no rule' });
    await authz.authorize({ user: 'admin', groups: [] }, 'create', 'n');
    await authz.authorize({ user: 'admin', groups: [] }, 'get', 'other');
    expect(reviews).toHaveLength(4);
    advance(200);
    await authz.authorize({ user: 'admin', groups: [] }, 'get', 'n');
    await authz.authorize({ user: 'mallory', groups: [] }, 'get', 'n');
    expect(reviews).toHaveLength(5);
    advance(1_000);
    await authz.authorize({ user: 'admin', groups: [] }, 'get', 'n');
    expect(reviews).toHaveLength(6);
  });

  it('an API failure or a malformed answer refuses, and is not cached', async () => {
    let fail = true;
    const { authz, reviews } = setup(() => {
      if (fail) throw new Error('connection refused');
      return { status: { allowed: true } };
    });
    await expect(authz.authorize({ user: 'u', groups: [] }, 'get', 'n')).rejects.toBeInstanceOf(AuthorizationError);
    fail = false;
    expect((await authz.authorize({ user: 'u', groups: [] }, 'get', 'n')).allowed).toBe(true);
    expect(reviews).toHaveLength(2);
    const bad = setup(() => ({ kind: 'Status' }));
    await expect(bad.authz.authorize({ user: 'u', groups: [] }, 'get', 'n')).rejects.toThrow(/without a status/);
  });

  it('stays bounded under many distinct callers', async () => {
    const { authz } = setup(() => ({ status: { allowed: false } }));
    const small = new NodeProxyAuthorizer({ review: async () => ({ status: { allowed: false } }), maxEntries: 10 });
    for (let i = 0; i < 100; i++) await small.authorize({ user: `u${i}`, groups: [] }, 'get', 'n');
    expect((small as unknown as { cache: Map<string, unknown> }).cache.size).toBeLessThanOrEqual(10);
    expect((await authz.authorize({ user: 'x', groups: [] }, 'get', 'n')).reason).toBe('no RBAC rule allows it');
  });
});
