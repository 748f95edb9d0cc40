/** Port lists such as `proxyHTTPPort: "10255,9445"` — the upstream wire format is a comma-separated string. */

export const PORT_LIST_PATTERN = '^[0-9]{1,5}(,[0-9]{1,5})*$';

export class PortListError extends Error {
  override readonly name = 'PortListError';
  constructor(readonly input: string, readonly reason: string) {
    super(`invalid port list "${input}": ${reason}`);
  }
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** A well-formed list: empty (no ports), or comma-separated port numbers within 1-65535. */
export function isValidPortList(input: string): boolean {
  try {
    parsePortList(input);
    return input.trim() === input && !/\s/.test(input);
  } catch {
    return false;
  }
}

/** Parses `"10255,9445"` into `[10255, 9445]` (input order, duplicates removed). Empty or absent input is `[]`. */
export function parsePortList(input: string | undefined): number[] {
  if (input === undefined || input.trim() === '') return [];
  const ports: number[] = [];
  for (const raw of input.split(',')) {
    const text = raw.trim();
    if (!/^[0-9]{1,5}$/.test(text)) throw new PortListError(input, `"${text}" is not a port number`);
    const port = Number(text);
    if (!isValidPort(port)) throw new PortListError(input, `${port} is outside 1-65535`);
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

export function formatPortList(ports: readonly number[]): string {
  return ports.join(',');
}
