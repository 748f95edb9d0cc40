import type { Domain, Link, LinkStatus, Topology } from './topology.ts';

/**
 * DOT and SVG renderings of a Topology. Gateway and Node names come from the API and are untrusted: they never form
 * DOT identifiers (those are generated, `d0`, `d0m1`), and every label is escaped for its target language.
 */

export const STATUS_COLOR: Record<LinkStatus, string> = { Connected: '#2e7d32', Connecting: '#ef6c00', Error: '#c62828', Unknown: '#757575' };
const READY_COLOR: Record<Domain['ready'], string> = { True: '#2e7d32', False: '#c62828', Unknown: '#757575' };
/** Member nodes drawn per domain; the rest is summarised. */
export const MAX_MEMBERS_DRAWN = 8;

/** A string as a quoted DOT ID: backslashes and quotes escaped, control characters replaced, length bounded. */
export function dotString(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.slice(0, 300).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return `"${clean.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A DOT label of several lines (each line escaped, then joined with DOT's own newline escape). */
function dotLines(lines: string[]): string {
  return `"${lines.map((l) => dotString(l).slice(1, -1)).join('\\n')}"`;
}

export function domainTitle(d: Domain): string {
  const kind = d.exposed ? 'exposed' : d.underNAT ? 'behind NAT' : 'private';
  return `${d.gateway} (${kind}${d.relay ? ', relay' : ''})`;
}

export function memberLines(d: Domain): string[] {
  const role = (n: string) => [n === d.tunnelNode ? 'tunnel' : '', d.proxyNodes.includes(n) ? 'proxy' : ''].filter(Boolean).join('+');
  const sorted = [...d.members].sort((a, b) => (role(b) ? 1 : 0) - (role(a) ? 1 : 0));
  const lines = sorted.slice(0, MAX_MEMBERS_DRAWN).map((n) => (role(n) ? `${n} [${role(n)}]` : n));
  if (sorted.length > MAX_MEMBERS_DRAWN) lines.push(`+${sorted.length - MAX_MEMBERS_DRAWN} more`);
  if (d.tunnelNode && !d.members.includes(d.tunnelNode)) lines.unshift(`${d.tunnelNode} [tunnel]`);
  return lines;
}

export function linkLabel(l: Link): string {
  return [l.relayedVia ? `via ${l.relayedVia}` : '', l.rtt ?? '', l.status === 'Connected' ? '' : l.status].filter(Boolean).join(' ');
}

export function toDot(t: Topology): string {
  const ids = new Map(t.domains.map((d, i) => [d.gateway, `d${i}`]));
  const out = ['graph raven {', '  graph [fontname="sans-serif", overlap=false, splines=true];', '  node [shape=box, style="rounded", fontname="sans-serif", fontsize=10];', '  edge [fontname="sans-serif", fontsize=9];'];
  t.domains.forEach((d, i) => {
    out.push(`  subgraph cluster_${i} {`, `    label=${dotString(domainTitle(d))};`, `    color=${dotString(READY_COLOR[d.ready])};`);
    out.push(`    d${i} [label=${dotLines([d.gateway, ...memberLines(d)])}, color=${dotString(READY_COLOR[d.ready])}, penwidth=2];`);
    out.push('  }');
  });
  // Links to a Gateway that does not exist (a stale status entry) get a node of their own, drawn as missing.
  let missing = 0;
  const idOf = (name: string) => {
    let id = ids.get(name);
    if (!id) {
      id = `x${missing++}`;
      ids.set(name, id);
      out.push(`  ${id} [label=${dotLines([name, '(no such Gateway)'])}, style="dashed", color="#757575"];`);
    }
    return id;
  };
  for (const l of t.links) {
    const attrs = [`color=${dotString(STATUS_COLOR[l.status])}`, `label=${dotString(linkLabel(l))}`, ...(l.relayedVia ? ['style=dashed'] : []), `tooltip=${dotString(l.reports.join('; '))}`];
    out.push(`  ${idOf(l.a)} -- ${idOf(l.b)} [${attrs.join(', ')}];`);
  }
  if (t.unassigned.length > 0) {
    const shown = t.unassigned.slice(0, MAX_MEMBERS_DRAWN).concat(t.unassigned.length > MAX_MEMBERS_DRAWN ? [`+${t.unassigned.length - MAX_MEMBERS_DRAWN} more`] : []);
    out.push(`  unassigned [label=${dotLines(['nodes without a Gateway', ...shown])}, style="dashed", color="#c62828"];`);
  }
  out.push('}');
  return out.join('\n') + '\n';
}

/** Text for XML content and attribute values. */
export function xmlText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.slice(0, 300).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff]/g, '?')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

interface Box { x: number; y: number; w: number; h: number; title: string; lines: string[]; color: string; dashed?: boolean }

const CHAR_W = 6.6;
const LINE_H = 15;
const PAD = 10;

function box(title: string, lines: string[], color: string, dashed = false): Box {
  const w = Math.ceil(Math.max(title.length, ...lines.map((l) => l.length)) * CHAR_W + 2 * PAD);
  return { x: 0, y: 0, w: Math.max(w, 120), h: (lines.length + 1) * LINE_H + 2 * PAD, title, lines, color, dashed };
}

/**
 * Our own layout, no Graphviz needed: relay domains in the middle, the others on a circle around them, radius
 * grown until no two boxes overlap; tunnels as straight lines between box centres.
 */
export function toSvg(t: Topology): string {
  const boxes = new Map<string, Box>();
  for (const d of t.domains) boxes.set(d.gateway, box(domainTitle(d), memberLines(d), READY_COLOR[d.ready]));
  for (const l of t.links) for (const end of [l.a, l.b]) if (!boxes.has(end)) boxes.set(end, box(end, ['(no such Gateway)'], STATUS_COLOR.Unknown, true));
  const centre = t.domains.filter((d) => d.relay).map((d) => boxes.get(d.gateway)!);
  const ring = [...boxes.values()].filter((b) => !centre.includes(b));
  if (t.unassigned.length > 0) {
    const shown = t.unassigned.slice(0, MAX_MEMBERS_DRAWN).concat(t.unassigned.length > MAX_MEMBERS_DRAWN ? [`+${t.unassigned.length - MAX_MEMBERS_DRAWN} more`] : []);
    ring.push(box('nodes without a Gateway', shown, STATUS_COLOR.Error, true));
  }
  // Centre boxes side by side around the origin.
  const centreWidth = centre.reduce((sum, b) => sum + b.w + PAD * 2, 0);
  let cx = -centreWidth / 2;
  for (const b of centre) {
    b.x = cx + PAD;
    b.y = -b.h / 2;
    cx += b.w + PAD * 2;
  }
  const diag = Math.max(0, ...[...boxes.values(), ...ring].map((b) => Math.hypot(b.w, b.h)));
  const radius = ring.length === 0 ? 0 : ring.length === 1 && centre.length === 0 ? 0
    : Math.max(centreWidth / 2 + diag, (diag + PAD * 2) / (2 * Math.sin(Math.PI / Math.max(ring.length, 2))));
  ring.forEach((b, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / ring.length;
    b.x = Math.cos(angle) * radius - b.w / 2;
    b.y = Math.sin(angle) * radius - b.h / 2;
  });
  const all = [...centre, ...ring];
  const minX = Math.min(0, ...all.map((b) => b.x)) - 40;
  const minY = Math.min(0, ...all.map((b) => b.y)) - 40;
  const maxX = Math.max(0, ...all.map((b) => b.x + b.w)) + 40;
  const maxY = Math.max(0, ...all.map((b) => b.y + b.h)) + 40;
  const width = Math.ceil(maxX - minX);
  const height = Math.ceil(maxY - minY);
  const px = (v: number) => (v - minX).toFixed(1);
  const py = (v: number) => (v - minY).toFixed(1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    '<title>Raven topology</title>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  for (const l of t.links) {
    const a = boxes.get(l.a)!;
    const b = boxes.get(l.b)!;
    const [x1, y1, x2, y2] = [a.x + a.w / 2, a.y + a.h / 2, b.x + b.w / 2, b.y + b.h / 2];
    out.push(`<g class="link"><title>${xmlText(l.reports.join('; '))}</title><line x1="${px(x1)}" y1="${py(y1)}" x2="${px(x2)}" y2="${py(y2)}" stroke="${STATUS_COLOR[l.status]}" stroke-width="2"${l.relayedVia ? ' stroke-dasharray="6 4"' : ''}/>`
      + `<text x="${px((x1 + x2) / 2)}" y="${py((y1 + y2) / 2 - 4)}" text-anchor="middle" fill="${STATUS_COLOR[l.status]}">${xmlText(linkLabel(l))}</text></g>`);
  }
  for (const b of all) {
    out.push(`<g class="domain"><rect x="${px(b.x)}" y="${py(b.y)}" width="${b.w}" height="${b.h}" rx="8" fill="#fafafa" stroke="${b.color}" stroke-width="2"${b.dashed ? ' stroke-dasharray="4 3"' : ''}/>`
      + `<text x="${px(b.x + PAD)}" y="${py(b.y + PAD + LINE_H - 3)}" font-weight="bold">${xmlText(b.title)}</text>`
      + b.lines.map((line, i) => `<text x="${px(b.x + PAD)}" y="${py(b.y + PAD + LINE_H * (i + 2) - 3)}">${xmlText(line)}</text>`).join('') + '</g>');
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
