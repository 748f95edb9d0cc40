import { z } from 'zod';
import { GROUP, V1ALPHA1, V1BETA1, gatewayV1alpha1Schema, gatewayV1beta1Schema, toV1alpha1, toV1beta1 } from '@raven/api-types';

/** apiextensions.k8s.io/v1 ConversionReview, as the apiserver sends it. */
const conversionReviewSchema = z.object({
  apiVersion: z.literal('apiextensions.k8s.io/v1'),
  kind: z.literal('ConversionReview'),
  request: z.object({
    uid: z.string(),
    desiredAPIVersion: z.string(),
    objects: z.array(z.looseObject({ apiVersion: z.string() })),
  }),
});

export class ConversionError extends Error {
  override readonly name = 'ConversionError';
}

const ALPHA = `${GROUP}/${V1ALPHA1}`;
const BETA = `${GROUP}/${V1BETA1}`;

/** Converts one Gateway to `desired`, going through v1beta1 (the hub). */
export function convertGateway(object: { apiVersion: string }, desired: string): unknown {
  if (object.apiVersion === desired) return object;
  const asBeta = (() => {
    if (object.apiVersion === BETA) return gatewayV1beta1Schema.parse(object);
    if (object.apiVersion === ALPHA) return toV1beta1(gatewayV1alpha1Schema.parse(object));
    throw new ConversionError(`unsupported apiVersion ${object.apiVersion}`);
  })();
  if (desired === BETA) return asBeta;
  if (desired === ALPHA) return toV1alpha1(asBeta);
  throw new ConversionError(`unsupported desiredAPIVersion ${desired}`);
}

/** Answers a ConversionReview. Any failure becomes a Failure result that names the object, never a thrown error. */
export function reviewConversion(body: unknown): { review: unknown; converted: number; failure?: string } {
  const parsed = conversionReviewSchema.safeParse(body);
  if (!parsed.success) {
    const uid = (body as { request?: { uid?: unknown } } | undefined)?.request?.uid;
    const failure = `malformed ConversionReview: ${z.prettifyError(parsed.error)}`;
    return { review: respond(typeof uid === 'string' ? uid : '', [], failure), converted: 0, failure };
  }
  const { uid, desiredAPIVersion, objects } = parsed.data.request;
  const converted: unknown[] = [];
  for (const object of objects) {
    try {
      converted.push(convertGateway(object, desiredAPIVersion));
    } catch (err) {
      const name = (object as { metadata?: { name?: string } }).metadata?.name ?? '<unnamed>';
      const detail = err instanceof z.ZodError ? z.prettifyError(err) : (err as Error).message;
      const failure = `cannot convert Gateway ${name} from ${object.apiVersion} to ${desiredAPIVersion}: ${detail}`;
      return { review: respond(uid, [], failure), converted: 0, failure };
    }
  }
  return { review: respond(uid, converted), converted: converted.length };
}

function respond(uid: string, convertedObjects: unknown[], failure?: string) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'ConversionReview',
    response: { uid, convertedObjects, result: failure ? { status: 'Failure', message: failure } : { status: 'Success' } },
  };
}
