import type { PeerCertificate } from 'node:tls';
import { z } from 'zod';

/** A front-end caller as the apiserver would see it from its client certificate: user = CN, groups = O. */
export interface Caller {
  user: string;
  groups: string[];
}

export function callerOfCertificate(cert: PeerCertificate | undefined): Caller | undefined {
  const cn = cert?.subject?.CN;
  if (!cert || typeof cn !== 'string' || cn === '') return undefined;
  const o = cert.subject.O as string | string[] | undefined;
  return { user: cn, groups: o === undefined ? [] : Array.isArray(o) ? o : [o] };
}

/** The verb the kubelet authorizes an HTTP method as (kubelet server's getAuthorizerAttributes). */
export function verbOfMethod(method: string): string {
  switch (method) {
    case 'POST': return 'create';
    case 'PUT': return 'update';
    case 'PATCH': return 'patch';
    case 'DELETE': return 'delete';
    default: return 'get';
  }
}

export class AuthorizationError extends Error {
  override readonly name = 'AuthorizationError';
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** Posts one SubjectAccessReview and returns the apiserver's answer (KubeClient.request in the app). */
export type ReviewRequester = (body: object) => Promise<unknown>;

const reviewStatusSchema = z.object({
  status: z.object({ allowed: z.boolean(), denied: z.boolean().optional(), reason: z.string().optional(), evaluationError: z.string().optional() }),
});

export interface NodeProxyAuthorizerOptions {
  review: ReviewRequester;
  /** How long answers are kept (the kubelet's webhook defaults: 5 min allowed, 30 s denied). */
  allowedTtlMs?: number;
  deniedTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

/**
 * Authorizes a front-end request as the kubelet authorizes its own API: a SubjectAccessReview for the caller's
 * identity on `nodes/proxy` of the target node, with the verb of the HTTP method. Answers are cached briefly, so
 * a flood of requests from one caller costs one review; errors are not cached and refuse the request.
 */
export class NodeProxyAuthorizer {
  private readonly cache = new Map<string, { decision: Decision; expires: number }>();
  private readonly inflight = new Map<string, Promise<Decision>>();
  private readonly allowedTtlMs: number;
  private readonly deniedTtlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly opts: NodeProxyAuthorizerOptions) {
    this.allowedTtlMs = opts.allowedTtlMs ?? 300_000;
    this.deniedTtlMs = opts.deniedTtlMs ?? 30_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  async authorize(caller: Caller, verb: string, node: string): Promise<Decision> {
    const key = JSON.stringify([caller.user, [...caller.groups].sort(), verb, node]);
    const cached = this.cache.get(key);
    if (cached && cached.expires > this.now()) return cached.decision;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.review(caller, verb, node).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const decision = await pending;
    this.remember(key, decision);
    return decision;
  }

  private async review(caller: Caller, verb: string, node: string): Promise<Decision> {
    let answer: unknown;
    try {
      answer = await this.opts.review({
        apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
        spec: { user: caller.user, groups: caller.groups, resourceAttributes: { verb, resource: 'nodes', subresource: 'proxy', name: node } },
      });
    } catch (err) {
      throw new AuthorizationError(`SubjectAccessReview failed: ${(err as Error).message}`, { cause: err });
    }
    const parsed = reviewStatusSchema.safeParse(answer);
    if (!parsed.success) throw new AuthorizationError('SubjectAccessReview answer without a status');
    const { allowed, reason, evaluationError } = parsed.data.status;
    return { allowed, reason: reason || evaluationError || (allowed ? 'allowed' : 'no RBAC rule allows it') };
  }

  private remember(key: string, decision: Decision): void {
    if (this.cache.size >= this.maxEntries) {
      const now = this.now();
      for (const [k, v] of this.cache) if (v.expires <= now) this.cache.delete(k);
      // Still full: drop the oldest insertions (Map order).
      for (const k of this.cache.keys()) {
        if (this.cache.size < this.maxEntries) break;
        this.cache.delete(k);
      }
    }
    this.cache.set(key, { decision, expires: this.now() + (decision.allowed ? this.allowedTtlMs : this.deniedTtlMs) });
  }
}
