import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { WORKSPACE_ROOT } from '@raven/testbed';
import { KREW_BIN, KREW_MANIFEST, archiveName, krewArchive, krewManifest, krewPluginSchema } from '../src/krew.ts';
import { VERSION } from '../src/version.ts';
import { ravenctl } from './support.ts';

const template = readFileSync(join(WORKSPACE_ROOT, KREW_MANIFEST), 'utf8');
const bundle = Buffer.from('#!/usr/bin/env node\nconsole.log("ravenctl");\n');

describe('the krew manifest', () => {
  it('is a krew v1alpha2 Plugin whose every platform installs the bin kubectl-raven', () => {
    const plugin = krewPluginSchema.parse(parse(template));
    expect(plugin.metadata.name).toBe('raven');
    expect(plugin.spec.version).toBe(`v${VERSION}`);
    for (const p of plugin.spec.platforms) {
      expect(p.bin).toBe(KREW_BIN);
      expect(p.files).toContainEqual({ from: KREW_BIN, to: '.' });
      expect(p.uri.endsWith(`/${archiveName(VERSION)}`)).toBe(true);
    }
  });

  it('documents its placeholders', () => {
    expect(template).toMatch(/platforms\[\]\.uri/);
    expect(template).toMatch(/platforms\[\]\.sha256 .*64 zeros/);
    expect(template).toContain('apps/ravenctl/krew/package.ts');
    expect(parse(template).spec.platforms[0].sha256).toBe('0'.repeat(64));
  });

  it('names the program "kubectl raven" when run as the bin krew installs', async () => {
    const r = await ravenctl(['help'], { RAVENCTL_ARGV0: `/home/u/.krew/bin/${KREW_BIN}` });
    expect(r.stdout).toMatch(/^Usage: kubectl raven <command>/);
  });
});

describe('the krew package', () => {
  it('holds the bundle as an executable kubectl-raven, and the filled manifest its uri and sha256', () => {
    const archive = krewArchive(bundle);
    const dir = mkdtempSync(join(tmpdir(), 'ravenctl-krew-'));
    try {
      writeFileSync(join(dir, 'a.tar.gz'), archive);
      expect(execFileSync('tar', ['-tzf', join(dir, 'a.tar.gz')], { encoding: 'utf8' }).trim().split('\n')).toEqual([KREW_BIN]);
      execFileSync('tar', ['-xzf', join(dir, 'a.tar.gz'), '-C', dir]);
      expect(statSync(join(dir, KREW_BIN)).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(dir, KREW_BIN))).toEqual(bundle);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const filled = krewManifest(template, { version: '1.2.3', baseUrl: 'https://example.test/releases/v1.2.3/', archive });
    const plugin = krewPluginSchema.parse(parse(filled));
    expect(plugin.spec.version).toBe('v1.2.3');
    expect(plugin.spec.platforms[0]).toMatchObject({ uri: 'https://example.test/releases/v1.2.3/kubectl-raven-v1.2.3.tar.gz', sha256: createHash('sha256').update(archive).digest('hex'), bin: KREW_BIN });
    expect(filled).toContain('# krew plugin manifest');
  });

  it('the bundle keeps main.ts\'s #! line, which krewArchive requires', () => {
    expect(readFileSync(join(WORKSPACE_ROOT, 'apps/ravenctl/src/main.ts'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  it('refuses a bundle that cannot run as a plugin', () => {
    expect(() => krewArchive(Buffer.from('console.log(1)'))).toThrow(/#!\/usr\/bin\/env node/);
  });
});
