import { RESOURCES, deepEqual, isAlreadyExists, isNotFound, type KubeClient, type ResourceType } from '@raven/controller-kit';

/** The one field manager of everything gateway-pickup writes. */
export const FIELD_MANAGER = 'raven-gateway-pickup';

type Obj = { metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: object[] } } & Record<string, unknown>;

/**
 * Create-or-update of one object we own: compares only the fields we set (`fields`, plus our labels) with what the
 * API has, and writes only when they differ. Returns 'created' | 'updated' | 'unchanged'.
 */
export async function ensureObject(kube: KubeClient, type: ResourceType, desired: Obj, fields: string[]): Promise<'created' | 'updated' | 'unchanged'> {
  const ref = { namespace: desired.metadata.namespace, name: desired.metadata.name };
  let current: Obj | undefined;
  try {
    current = await kube.get<Obj>(type, ref);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (!current) {
    try {
      await kube.create(type, desired, { fieldManager: FIELD_MANAGER });
      return 'created';
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      current = await kube.get<Obj>(type, ref);
    }
  }
  const labelsMatch = Object.entries(desired.metadata.labels ?? {}).every(([k, v]) => current.metadata.labels?.[k] === v);
  const fieldsMatch = fields.every((f) => fieldMatches(current[f], desired[f]));
  if (labelsMatch && fieldsMatch) return 'unchanged';
  const merged: Obj = {
    ...current,
    ...Object.fromEntries(fields.map((f) => [f, mergeField(current[f], desired[f])])),
    metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...desired.metadata.labels } },
  };
  await kube.replace(type, ref, merged, { fieldManager: FIELD_MANAGER });
  return 'updated';
}

/** A desired object field matches when every key we set equals the API's value (the API may add defaults). */
function fieldMatches(actual: unknown, wanted: unknown): boolean {
  if (wanted && typeof wanted === 'object' && !Array.isArray(wanted) && actual && typeof actual === 'object' && !Array.isArray(actual)) {
    return Object.entries(wanted).every(([k, v]) => fieldMatches((actual as Record<string, unknown>)[k], v));
  }
  if (Array.isArray(wanted) && Array.isArray(actual)) {
    return wanted.length === actual.length && wanted.every((w, i) => fieldMatches(actual[i], w));
  }
  return deepEqual(actual, wanted);
}

/** Our keys overwrite the API's; keys the API defaulted (clusterIP, nodePort, ipFamilies, ...) are kept. */
function mergeField(actual: unknown, wanted: unknown): unknown {
  const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (isRecord(wanted) && isRecord(actual)) {
    return Object.fromEntries([...Object.entries(actual), ...Object.entries(wanted).map(([k, v]) => [k, mergeField(actual[k], v)])]);
  }
  if (Array.isArray(wanted) && Array.isArray(actual)) return wanted.map((w, i) => mergeField(actual[i], w));
  return wanted;
}

export async function deleteIfExists(kube: KubeClient, type: ResourceType, namespace: string, name: string): Promise<boolean> {
  try {
    await kube.delete(type, { namespace, name });
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export { RESOURCES };
