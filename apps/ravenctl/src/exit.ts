/** Exit codes: scripts can tell "the cluster has problems" from "ravenctl could not look". */
export const EXIT = { healthy: 0, findings: 1, usage: 2, unreachable: 3, internal: 4 } as const;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}
