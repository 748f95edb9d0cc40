import { isConflict } from './errors.ts';
import type { KubeClient, ObjectRef, ResourceType } from './kube-client.ts';

export class ConflictRetriesExhaustedError extends Error {
  override readonly name = 'ConflictRetriesExhaustedError';
}

/**
 * Writes the status subresource with optimistic concurrency: `compute` sees the object (first the caller's cached
 * copy, after a 409 Conflict a fresh read) and returns the new status, or undefined when nothing needs writing.
 * Returns true if a write happened.
 */
export async function writeStatus<T extends { metadata: { resourceVersion?: string } }, S>(
  kube: KubeClient,
  type: ResourceType,
  ref: ObjectRef,
  cached: T | undefined,
  compute: (obj: T) => S | undefined,
  opts: { fieldManager: string; attempts?: number; parse?: (raw: unknown) => T },
): Promise<boolean> {
  const read = async () => (opts.parse ? opts.parse(await kube.get<unknown>(type, ref)) : kube.get<T>(type, ref));
  let current = cached ?? (await read());
  const attempts = opts.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const status = compute(current);
    if (status === undefined) return false;
    try {
      await kube.replace(type, { ...ref, subresource: 'status' }, { ...current, status }, { fieldManager: opts.fieldManager });
      return true;
    } catch (err) {
      if (!isConflict(err)) throw err;
      if (attempt >= attempts) throw new ConflictRetriesExhaustedError(`status of ${ref.name}: still conflicting after ${attempts} attempts`);
      current = await read();
    }
  }
}
