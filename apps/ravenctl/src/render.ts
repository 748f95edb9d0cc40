import { stringify } from 'yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';

/** Terminal-safe text: control characters (ANSI escapes, newlines) from untrusted names never reach the terminal. */
export function safeText(value: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(value ?? '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** A plain aligned table (kubectl style): upper-case headers, two spaces between columns. */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map(safeText))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export function section(title: string, body: string): string {
  return `${title}\n${body}\n`;
}

export function serialize(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(data, null, 2) + '\n' : stringify(data);
}
