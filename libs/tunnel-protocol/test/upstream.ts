import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execPath } from 'node:process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { konnectivityPort, sendConnect } from '@raven/testbed';
import { createCA, issueCertificate, type KeyPairPem } from '@raven/pki';
import { LOCALHOST } from './support.ts';

/** Helpers for driving the real konnectivity v0.34.0 binaries (built by scripts/go-binaries.sh). */

const KONNECTIVITY_DIR = join(process.env.RAVEN_BIN_CACHE ?? join(homedir(), '.cache/raven-ts/bin'), 'konnectivity-v0.34.0');
export const PROXY_SERVER_BIN = join(KONNECTIVITY_DIR, 'proxy-server');
export const PROXY_AGENT_BIN = join(KONNECTIVITY_DIR, 'proxy-agent');

export function requireBinaries(): void {
  for (const bin of [PROXY_SERVER_BIN, PROXY_AGENT_BIN]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing; run \`node scripts/bootstrap.mjs --binaries\``);
  }
}

/** Upstream refuses ephemeral ports for its listeners. */
export const freePort = (): Promise<number> => konnectivityPort(LOCALHOST);

export interface TestPki {
  dir: string;
  caPem: string;
  server: KeyPairPem;
  agent: KeyPairPem;
  frontendClient: KeyPairPem;
  /** Paths of every PEM, for the binaries' flags. */
  files: Record<'ca' | 'serverCert' | 'serverKey' | 'agentCert' | 'agentKey' | 'clientCert' | 'clientKey', string>;
}

export async function createTestPki(agentCommonName: string): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'raven-tunnel-int-'));
  const ca = await createCA('raven-tunnel-test-ca');
  const server = await issueCertificate(ca, { commonName: 'konnectivity-server', dnsNames: ['localhost'], ipAddresses: [LOCALHOST], usages: ['server'] });
  const agent = await issueCertificate(ca, { commonName: agentCommonName, organizations: ['raven:agents'], usages: ['client'] });
  const frontendClient = await issueCertificate(ca, { commonName: 'kube-apiserver', usages: ['client'] });
  const files = {
    ca: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'),
    agentCert: join(dir, 'agent.crt'), agentKey: join(dir, 'agent.key'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key'),
  };
  const contents: Record<keyof typeof files, string> = {
    ca: ca.certPem, serverCert: server.certPem, serverKey: server.keyPem, agentCert: agent.certPem, agentKey: agent.keyPem,
    clientCert: frontendClient.certPem, clientKey: frontendClient.keyPem,
  };
  for (const [key, path] of Object.entries(files)) writeFileSync(path, contents[key as keyof typeof files], { mode: 0o600 });
  return { dir, caPem: ca.certPem, server, agent, frontendClient, files };
}

export interface UpstreamProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  log(): string;
  stop(): Promise<void>;
}

export function startUpstream(name: string, bin: string, args: string[], dir: string, cwd?: string): UpstreamProcess {
  const logFile = join(dir, `${name}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = once(child, 'exit');
  // Last resort if the test process dies without running afterAll.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  return {
    child,
    logFile,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs one of test/fixtures/*.ts in its own Node process (through tsx) and waits for its ready line. */
export async function startFixture(name: string, file: string, config: object, dir: string): Promise<UpstreamProcess> {
  const path = fileURLToPath(new URL(`./fixtures/${file}`, import.meta.url));
  const fixture = startUpstream(name, execPath, ['--expose-gc', '--import', 'tsx', path, JSON.stringify(config)], dir, REPO_ROOT);
  const deadline = Date.now() + 20_000;
  while (!fixture.log().includes('{"ready":true}')) {
    if (fixture.child.exitCode !== null || Date.now() > deadline) throw new Error(`fixture ${name} did not start:\n${fixture.log().slice(-3000)}`);
    await sleep(50);
  }
  return fixture;
}

export async function waitForPort(port: number, process: UpstreamProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (process.child.exitCode !== null) throw new Error(`upstream exited early (${process.child.exitCode}):\n${process.log().slice(-3000)}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, LOCALHOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened:\n${process.log().slice(-3000)}`);
    await sleep(50);
  }
}

/**
 * Opens an HTTP CONNECT tunnel through an upstream proxy-server frontend (mTLS, as kube-apiserver
 * does) and returns the paused TLS socket positioned just after the response head.
 */
export async function httpConnect(port: number, pki: TestPki, target: string): Promise<{ socket: TLSSocket; statusLine: string }> {
  const socket = tlsConnect({ host: LOCALHOST, port, ca: pki.caPem, cert: pki.frontendClient.certPem, key: pki.frontendClient.keyPem, servername: 'localhost' });
  await once(socket, 'secureConnect');
  const statusLine = await sendConnect(socket, target);
  return { socket, statusLine };
}
