import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { toDot, toSvg } from './graph.ts';
import { serialize } from './render.ts';
import { buildTopology } from './topology.ts';
import type { Command } from './cli.ts';
import { EXIT, UsageError } from './exit.ts';

export function findOnPath(program: string, path: string | undefined): string | undefined {
  return (path ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, program)).find((p) => existsSync(p));
}

/** SVG from Graphviz's `dot`, fed our DOT (already escaped) on stdin. */
export function graphvizSvg(dotBinary: string, dot: string): string {
  const res = spawnSync(dotBinary, ['-Tsvg'], { input: dot, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20 });
  if (res.error || res.status !== 0) throw new Error(`${dotBinary} -Tsvg failed: ${res.error?.message ?? res.stderr.trim()}`);
  return res.stdout;
}

export const graphCommand: Command = {
  summary: 'The topology (domains, gateways, tunnels, relays and their health) as DOT or SVG',
  flags: { format: { type: 'string', short: 'f' }, layout: { type: 'string' }, file: { type: 'string' } },
  flagHelp: {
    format: 'dot (default) or svg; -o json|yaml prints the topology data instead',
    layout: 'for svg: auto (default: Graphviz when `dot` is on the PATH, else built in), builtin, or graphviz',
    file: 'write to this file instead of stdout',
  },
  async run(ctx) {
    const format = ctx.values.format ?? 'dot';
    if (format !== 'dot' && format !== 'svg') throw new UsageError(`--format must be dot or svg; got "${String(format)}"`);
    const layout = ctx.values.layout ?? 'auto';
    if (layout !== 'auto' && layout !== 'builtin' && layout !== 'graphviz') throw new UsageError(`--layout must be auto, builtin or graphviz; got "${String(layout)}"`);
    const dotBinary = layout === 'builtin' ? undefined : findOnPath('dot', ctx.io.env.PATH);
    if (layout === 'graphviz' && !dotBinary) throw new UsageError('--layout=graphviz: no `dot` on the PATH (install Graphviz, or use --layout=builtin)');
    const topology = buildTopology(await ctx.snapshot());
    const text = ctx.output !== 'table' ? serialize(topology, ctx.output)
      : format === 'dot' ? toDot(topology)
        : dotBinary ? graphvizSvg(dotBinary, toDot(topology)) : toSvg(topology);
    if (typeof ctx.values.file === 'string') writeFileSync(ctx.values.file, text);
    else ctx.io.stdout(text);
    return EXIT.healthy;
  },
};
