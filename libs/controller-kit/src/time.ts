/** Kubernetes MicroTime: RFC 3339 with microseconds, e.g. 2026-01-02T03:04:05.123456Z. */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Kubernetes Time: RFC 3339 to the second. */
export function metaTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
