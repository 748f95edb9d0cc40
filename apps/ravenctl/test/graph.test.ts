import { describe, expect, it } from 'vitest';
import { dotString, memberLines, toDot, toSvg, xmlText } from '../src/graph.ts';
import { buildTopology } from '../src/topology.ts';
import { gateway, node, snapshot, walkthrough } from './fixtures.ts';

const HOSTILE = 'x"] ; evil -- pwn [label="\\\n</text><script>alert(1)</script>&amp;\u001b[2J';

/** What is left of DOT text once every well-formed quoted string is removed: identifiers, keywords, punctuation. */
const outsideQuotes = (dot: string) => dot.replace(/"(?:[^"\\\n]|\\.)*"/g, 'Q');

/** A small XML well-formedness check: balanced tags, no stray `<`/`&`. */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  const body = svg.replace(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z0-9-]+="[^"<]*")*)\s*(\/?)>/g, (_, close: string, name: string, _attrs: string, self: string) => {
    if (close) expect(stack.pop()).toBe(name);
    else if (!self) stack.push(name);
    return '';
  });
  expect(stack).toEqual([]);
  expect(body).not.toMatch(/[<>]/);
  expect(body.replace(/&(amp|lt|gt|quot|#39);/g, '')).not.toContain('&');
}

describe('buildTopology', () => {
  it('the walkthrough: three domains, relay in the cloud, NAT↔NAT relayed', () => {
    const t = buildTopology(walkthrough());
    expect(t.domains.map((d) => [d.gateway, d.exposed, d.underNAT, d.relay, d.tunnelNode, d.members.join(',')])).toEqual([
      ['gw-cloud', true, false, true, 'cloud-1', 'cloud-1,cloud-2'],
      ['gw-hangzhou', false, true, false, 'hz-1', 'hz-1,hz-2'],
      ['gw-qingdao', false, true, false, 'qd-1', 'qd-1,qd-2'],
    ]);
    expect(t.links.map((l) => [l.a, l.b, l.status, l.relayedVia ?? '', l.reports.length])).toEqual([
      ['gw-cloud', 'gw-hangzhou', 'Connected', '', 2],
      ['gw-cloud', 'gw-qingdao', 'Connected', '', 2],
      ['gw-hangzhou', 'gw-qingdao', 'Connected', 'gw-cloud', 2],
    ]);
    expect(t.unassigned).toEqual([]);
  });

  it.each([
    [['Connected', 'Connected'], 'Connected'],
    [['Connected', 'Error'], 'Error'],
    [['Error', 'Connected'], 'Error'],
    [['Connecting', 'Connected'], 'Connecting'],
    [['Connecting'], 'Connecting'],
  ] as const)('a link reported %o is %s', (sides, want) => {
    const gws = sides.map((status, i) => gateway(i === 0 ? 'a' : 'b', { connections: [{ gateway: i === 0 ? 'b' : 'a', nodeName: 'n', status }] }));
    expect(buildTopology(snapshot({ gateways: gws })).links[0]!.status).toBe(want);
  });

  it('collects nodes without a label, or labelled with a Gateway that does not exist', () => {
    const t = buildTopology(snapshot({ gateways: [gateway('g')], nodes: [node('a', 'g'), node('b'), node('c', 'gone')] }));
    expect(t.domains[0]!.members).toEqual(['a']);
    expect(t.unassigned).toEqual(['b', 'c']);
  });

  it('ignores a Gateway reporting itself as a peer', () => {
    expect(buildTopology(snapshot({ gateways: [gateway('g', { connections: [{ gateway: 'g', nodeName: 'n', status: 'Connected' }] })] })).links).toEqual([]);
  });
});

describe('memberLines', () => {
  it('puts gateway nodes first, marks roles and summarises long lists', () => {
    const t = buildTopology(snapshot({
      gateways: [gateway('g', { active: [{ nodeName: 'n5' }, { nodeName: 'n7', type: 'proxy' }] })],
      nodes: Array.from({ length: 12 }, (_, i) => node(`n${i}`, 'g')),
    }));
    const lines = memberLines(t.domains[0]!);
    expect(lines.slice(0, 2)).toEqual(['n5 [tunnel]', 'n7 [proxy]']);
    expect(lines).toHaveLength(9);
    expect(lines.at(-1)).toBe('+4 more');
  });
});

describe('DOT', () => {
  it('renders the walkthrough with clusters, status colours and dashed relayed links', () => {
    const dot = toDot(buildTopology(walkthrough()));
    expect(dot).toMatch(/^graph raven \{\n/);
    expect(dot).toContain('subgraph cluster_0 {\n    label="gw-cloud (exposed, relay)";');
    expect(dot).toContain('d0 [label="gw-cloud\\ncloud-1 [tunnel+proxy]\\ncloud-2"');
    expect(dot).toContain('d1 -- d2 [color="#2e7d32", label="via gw-cloud 1.1ms", style=dashed');
    expect(outsideQuotes(dot)).not.toMatch(/gw-|cloud-1/);
  });

  it.each([
    ['plain', 'plain'],
    ['quo"te', 'quo\\"te'],
    ['back\\slash', 'back\\\\slash'],
    ['new\nline', 'new?line'],
    ['\\"', '\\\\\\"'],
  ])('dotString(%j)', (input, inner) => expect(dotString(input)).toBe(`"${inner}"`));

  it('keeps hostile Gateway and Node names inside quoted strings', () => {
    const t = buildTopology(snapshot({
      gateways: [gateway(HOSTILE, { connections: [{ gateway: `${HOSTILE}2`, nodeName: HOSTILE, status: 'Error', statusMessage: HOSTILE }] })],
      nodes: [node(HOSTILE, HOSTILE), node(`${HOSTILE}-loose`)],
    }));
    const dot = toDot(t);
    const skeleton = outsideQuotes(dot);
    expect(skeleton).not.toContain('"');
    expect(skeleton).not.toMatch(/evil|pwn|script/);
    // Every statement is one of ours: ids we generate, attributes, braces.
    for (const line of skeleton.trimEnd().split('\n')) expect(line).toMatch(/^(graph raven \{|\}|\s+(graph|node|edge) \[.*\];|\s+subgraph cluster_\d+ \{|\s+(label|color)=Q;|\s+\}|\s+(d|x)\d+ \[.*\];|\s+(d|x)\d+ -- (d|x)\d+ \[.*\];|\s+unassigned \[.*\];)$/);
  });
});

describe('SVG (built-in layout)', () => {
  const rects = (svg: string) => [...svg.matchAll(/<g class="domain"><rect x="([\d.]+)" y="([\d.]+)" width="(\d+)" height="(\d+)"/g)].map((m) => m.slice(1, 5).map(Number) as [number, number, number, number]);

  it('is well-formed and escapes hostile names', () => {
    const svg = toSvg(buildTopology(snapshot({
      gateways: [gateway(HOSTILE, { connections: [{ gateway: 'peer', nodeName: HOSTILE, status: 'Error', statusMessage: HOSTILE }] }), gateway('peer')],
      nodes: [node(HOSTILE, HOSTILE), node('loose')],
    })));
    assertWellFormed(svg);
    expect(svg).not.toContain('<script');
    expect(svg).toContain(xmlText(HOSTILE.slice(0, 20)));
  });

  it.each([1, 2, 3, 5, 12, 40])('lays out %i domains without overlapping boxes, inside the canvas', (count) => {
    const gws = Array.from({ length: count }, (_, i) => gateway(`gw-${i}`, {
      exposeType: i === 0 ? 'PublicIP' : undefined,
      connections: i === 0 ? [] : [{ gateway: 'gw-0', nodeName: 'n', status: 'Connected' }, { gateway: `gw-${(i % (count - 1)) + 1}`, nodeName: 'n', status: 'Connected', relayedVia: 'gw-0' }],
    }));
    const nodes = gws.flatMap((g, i) => Array.from({ length: i % 4 }, (_, j) => node(`${g.metadata.name}-node-with-a-long-name-${j}`, g.metadata.name)));
    const svg = toSvg(buildTopology(snapshot({ gateways: gws, nodes })));
    assertWellFormed(svg);
    const [, width, height] = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg)!.map(Number) as [number, number, number];
    const boxes = rects(svg);
    expect(boxes).toHaveLength(count);
    for (const [x, y, w, h] of boxes) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(x + w).toBeLessThanOrEqual(width);
      expect(y + h).toBeLessThanOrEqual(height);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [ax, ay, aw, ah] = boxes[i]!;
        const [bx, by, bw, bh] = boxes[j]!;
        expect(ax + aw <= bx || bx + bw <= ax || ay + ah <= by || by + bh <= ay, `boxes ${i} and ${j} overlap`).toBe(true);
      }
    }
  });
});
