import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { GATEWAY_CRD_FILE, parseManifests, readManifests, type K8sObject } from './manifests.ts';

/**
 * `kubectl` and `helm` as the README (Install on a cluster)'s commands meet them in install-doc.int.test.ts (run as
 * `node --import tsx doc-shim.ts <kubectl|helm> <args...>` from wrappers on PATH). Every call is logged.
 *
 * RAVEN_DOC_MODE=real passes kubectl through. RAVEN_DOC_MODE=dry-run turns every write into a server-side dry run:
 *  - `kubectl <write verb> ...` gets `--dry-run=server`, and `kubectl wait --for=delete` (of what a dry run did not
 *    delete) returns at once;
 *  - `kubectl apply -k DIR` becomes the rendered DIR minus the Gateway CRD, which must be the generated file that
 *    the test bed installed for real (its webhook points the live CRD at a URL, so it cannot be re-applied);
 *  - `helm install NAME CHART [flags]` becomes `helm template` of the same, applied as a server-side dry run.
 */
const [tool, ...args] = process.argv.slice(2);
const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`doc-shim: ${name} is not set`);
  return value;
};
const mode = env('RAVEN_DOC_MODE');
appendFileSync(env('RAVEN_DOC_LOG'), `${JSON.stringify({ tool, args, mode })}\n`);

const WRITE_VERBS = new Set(['apply', 'create', 'delete', 'label', 'annotate', 'patch', 'replace', 'scale']);

function exec(command: string, argv: string[], input?: string): never {
  const res = spawnSync(command, argv, { stdio: [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit'], input, maxBuffer: 64 << 20 });
  process.exit(res.status ?? 1);
}

function capture(command: string, argv: string[]): string {
  const res = spawnSync(command, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (res.status !== 0) {
    process.stderr.write(res.stderr);
    process.exit(res.status ?? 1);
  }
  return res.stdout;
}

/** The verb: the first argument that is neither a flag nor a flag's value (`-n kube-system delete ...`). */
function verbOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-n' || a === '--namespace' || a === '--context') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

function withoutCrd(objects: readonly K8sObject[]): K8sObject[] {
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  if (crds.length > 0 && !isDeepStrictEqual(crds, readManifests(GATEWAY_CRD_FILE))) {
    process.stderr.write('doc-shim: the rendered CRD is not the generated k8s/base/crds file\n');
    process.exit(3);
  }
  return objects.filter((o) => o.kind !== 'CustomResourceDefinition');
}

const kubectl = env('RAVEN_REAL_KUBECTL');
const dryApply = (objects: readonly K8sObject[]): never =>
  exec(kubectl, ['apply', '--server-side', ...(args.includes('--force-conflicts') ? ['--force-conflicts'] : []), '--dry-run=server', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));

if (tool === 'kubectl') {
  const verb = verbOf(args);
  // A dry-run delete deleted nothing, so there is nothing to wait for (the shared cluster holds other tests' Pods).
  if (mode === 'dry-run' && verb === 'wait' && args.includes('--for=delete')) process.exit(0);
  if (mode === 'real' || !verb || !WRITE_VERBS.has(verb)) exec(kubectl, args);
  const k = args.indexOf('-k');
  if (verb === 'apply' && k >= 0) {
    const rest = [...args.slice(0, k), ...args.slice(k + 2)];
    const flags = rest.filter((a) => a !== '--force-conflicts');
    if (JSON.stringify(flags) !== JSON.stringify(['apply', '--server-side'])) throw new Error(`doc-shim: unexpected apply flags ${rest.join(' ')}`);
    dryApply(withoutCrd(parseManifests(capture(kubectl, ['kustomize', args[k + 1]!]))));
  }
  exec(kubectl, [...args, '--dry-run=server']);
} else if (tool === 'helm') {
  if (mode !== 'dry-run' || args[0] !== 'install') throw new Error(`doc-shim: only \`helm install\` in dry-run blocks, got helm ${args.join(' ')}`);
  const rendered = capture(env('RAVEN_REAL_HELM'), ['template', ...args.slice(1), '--kube-version', env('RAVEN_KUBE_VERSION')]);
  dryApply(withoutCrd(parseManifests(rendered)));
} else {
  throw new Error(`doc-shim: unknown tool ${tool}`);
}
