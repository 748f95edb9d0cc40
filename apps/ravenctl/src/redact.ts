/**
 * Redaction for support bundles: structure first (Secret values, sensitive ConfigMap keys and env vars), then the
 * text of every file (private keys, bearer tokens, JWTs, and every Secret value seen, raw and base64), so a value
 * that leaked somewhere unexpected (a log line, an annotation) is caught too.
 */
export const REDACTED = 'REDACTED';
export const SENSITIVE_KEY = /(psk|passw(or)?d|secret|token|private[-_.]?key|credential|api[-_]?key)/i;
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** Values shorter than this are not scrubbed from free text (they would match everywhere). */
const MIN_SCRUB_LENGTH = 6;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isRecord = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class SecretCollector {
  readonly values = new Set<string>();

  add(value: string): void {
    if (value.length >= MIN_SCRUB_LENGTH) this.values.add(value);
  }
}

function redactValues(data: Json | undefined, keep: (key: string) => boolean, secrets: SecretCollector, base64: boolean): Json | undefined {
  if (!isRecord(data)) return data;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(data)) {
    if (keep(key) || typeof value !== 'string') {
      out[key] = value;
      continue;
    }
    secrets.add(value);
    if (base64) secrets.add(Buffer.from(value, 'base64').toString('utf8'));
    out[key] = `${REDACTED} (${base64 ? Buffer.from(value, 'base64').length : Buffer.byteLength(value)} bytes)`;
  }
  return out;
}

function redactEnv(value: Json, secrets: SecretCollector): Json {
  if (Array.isArray(value)) return value.map((v) => redactEnv(v, secrets));
  if (!isRecord(value)) return value;
  const out: Record<string, Json> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'env' && Array.isArray(v)) {
      out[key] = v.map((e) => {
        if (isRecord(e) && typeof e.name === 'string' && typeof e.value === 'string' && SENSITIVE_KEY.test(e.name)) {
          secrets.add(e.value);
          return { ...e, value: REDACTED };
        }
        return e;
      });
    } else {
      out[key] = redactEnv(v, secrets);
    }
  }
  return out;
}

/** One API object, redacted by kind; managedFields dropped (noise). Secret values are remembered for scrubText. */
export function redactObject(obj: unknown, secrets: SecretCollector, listKind?: string): Json {
  const o = JSON.parse(JSON.stringify(obj ?? null)) as Json;
  if (!isRecord(o)) return o;
  // Items of a list carry no kind; the caller says what it listed.
  const kind = typeof o.kind === 'string' ? o.kind : listKind ?? '';
  if (isRecord(o.metadata)) {
    delete o.metadata.managedFields;
    const annotations = o.metadata.annotations;
    if (isRecord(annotations)) {
      for (const [key, value] of Object.entries(annotations)) {
        if (typeof value !== 'string') continue;
        if ((key === LAST_APPLIED && (kind === 'Secret' || kind === 'ConfigMap')) || SENSITIVE_KEY.test(key)) {
          secrets.add(value);
          annotations[key] = REDACTED;
        }
      }
    }
  }
  if (kind === 'Secret') {
    o.data = redactValues(o.data, () => false, secrets, true) ?? null;
    if (o.stringData !== undefined) o.stringData = redactValues(o.stringData, () => false, secrets, false) ?? null;
  } else if (kind === 'ConfigMap') {
    o.data = redactValues(o.data, (key) => !SENSITIVE_KEY.test(key), secrets, false) ?? null;
    if (isRecord(o.binaryData)) o.binaryData = redactValues(o.binaryData, () => false, secrets, true) ?? null;
  }
  if (o.spec !== undefined) o.spec = redactEnv(o.spec, secrets);
  return o;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Free text with secrets removed: PEM private keys, bearer tokens, JWTs and every value the collector saw. */
export function scrubText(text: string, secrets: SecretCollector): string {
  let out = text
    .replace(/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g, `-----${REDACTED} PRIVATE KEY-----`)
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, `$1${REDACTED}`)
    .replace(/eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+/g, REDACTED);
  // A PEM private key that was base64-encoded (Secret data, a kubeconfig's client-key-data) is a secret too.
  out = out.replace(/LS0tLS1CRUdJTi[A-Za-z0-9+/=]{20,}/g, (b64) => (Buffer.from(b64, 'base64').toString('latin1').includes('PRIVATE KEY-----') ? REDACTED : b64));
  const values = [...secrets.values].flatMap((v) => [v, Buffer.from(v, 'utf8').toString('base64'), JSON.stringify(v).slice(1, -1)])
    .filter((v) => v.length >= MIN_SCRUB_LENGTH).sort((a, b) => b.length - a.length);
  for (const v of new Set(values)) out = out.replace(new RegExp(escapeRegExp(v), 'g'), REDACTED);
  return out;
}
