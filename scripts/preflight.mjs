// One clear sentence per unmet prerequisite, before any long step starts. Node built-ins only: this runs on a
// fresh clone before npm ci.
import { spawnSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { homedir } from 'node:os';

export const GO_MINIMUM = [1, 24];
const GIB = 2 ** 30;

const ok = (cmd, argv) => spawnSync(cmd, argv, { stdio: 'ignore' }).status === 0;
const onPath = (bin) => ok('sh', ['-c', `command -v ${bin}`]);

/** Parses `go version` output ("go version go1.26.8 linux/amd64") into [major, minor], or undefined. */
export function goVersion(text) {
  const m = /\bgo(\d+)\.(\d+)/.exec(text.replace(/^go version /, ''));
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

export const atLeast = (have, want) => have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);

function freeGiB(path) {
  const s = statfsSync(path);
  return (s.bavail * s.bsize) / GIB;
}

/**
 * The kernel features the box needs, tried in a throwaway network namespace that vanishes with its process: a veth
 * pair, a vxlan device and an iptables table. Nothing touches the machine's own namespace. Returns the first line of
 * the failure, or undefined when all of it worked.
 */
function kernelFailure() {
  const script = 'ip link add rvn-pf0 type veth peer name rvn-pf1 && ip link add rvn-pfx type vxlan id 42 dstport 4789 dev rvn-pf0 && iptables -t nat -L -n >/dev/null';
  const r = spawnSync('unshare', ['--net', 'sh', '-c', script], { encoding: 'utf8' });
  return r.status === 0 ? undefined : (r.stderr || r.error?.message || '').trim().split('\n')[0];
}

/**
 * What the checks look at, gathered only for the steps asked for (Go is run only for binaries, the kernel tried only
 * as root): { root, aptGet, go: [major, minor] or undefined when missing, kernelFailure: a message or undefined,
 * home, freeGiB }.
 */
export function gatherFacts({ apt = false, binaries = false, kernel = false, diskGiB = 0 } = {}) {
  const root = process.getuid?.() === 0;
  const go = binaries ? spawnSync('go', ['version'], { encoding: 'utf8' }) : undefined;
  return {
    root,
    aptGet: apt ? onPath('apt-get') : true,
    go: go?.status === 0 ? goVersion(go.stdout) : undefined,
    kernelFailure: kernel && root && onPath('unshare') && onPath('ip') ? kernelFailure() : undefined,
    home: homedir(),
    freeGiB: diskGiB > 0 ? freeGiB(homedir()) : Infinity,
  };
}

/** The problems for the steps asked for, given the facts (gatherFacts); an empty list means go ahead. */
export function problems({ apt = false, binaries = false, kernel = false, diskGiB = 0 }, facts) {
  const found = [];
  if ((apt || kernel) && !facts.root) found.push('this step needs root (network namespaces, Debian packages): run it as root');
  if (apt && !facts.aptGet) found.push('apt-get is missing: this needs a Debian or Ubuntu machine, or install the packages listed in the README by hand');
  if (binaries) {
    if (!facts.go) found.push(`Go is missing: install Go ${GO_MINIMUM.join('.')} or newer (it builds the pinned upstream binaries the tests run against)`);
    else if (!atLeast(facts.go, GO_MINIMUM)) found.push(`Go ${facts.go.join('.')} is too old: install Go ${GO_MINIMUM.join('.')} or newer`);
  }
  if (kernel && facts.kernelFailure !== undefined) found.push(`the kernel cannot create what the box needs in a network namespace (veth, vxlan, iptables nat): ${facts.kernelFailure}`);
  if (diskGiB > 0 && facts.freeGiB < diskGiB) found.push(`only ${facts.freeGiB.toFixed(1)} GiB free under ${facts.home}: the build cache and boxes need about ${diskGiB} GiB`);
  return found;
}

/** Returns the problems for the steps asked for; an empty list means go ahead. */
export function preflight(steps = {}) {
  return problems(steps, gatherFacts(steps));
}
