// The kube-apiserver's way into a real-node box: an HTTP CONNECT proxy on a unix socket (the apiserver's egress
// selector for `cluster` traffic points at it), run inside a cloud node's network namespace. So the apiserver reaches
// kubelets from the cloud network, as when it runs on a cloud node: a node name is resolved through the DNS server
// given (raven-proxy-dns's ClusterIP, which answers node names with the L7 proxy's Service) and connected to through
// that node's kube-proxy rules.
//
//   node connect-proxy.mjs unix:<path> dns:<ip>[:<port>] [watch-pid:<pid>]
import { unlinkSync } from 'node:fs';
import { isIP, connect, createServer } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { exitWith } from './lifetime.mjs';

const MAX_HEAD = 8192;
const [listenSpec, dnsSpec, watchSpec] = process.argv.slice(2);
const dnsMatch = /^dns:([\d.]+)(?::(\d+))?$/.exec(dnsSpec ?? '');
if (!listenSpec?.startsWith('unix:') || !dnsMatch) {
  console.error('usage: connect-proxy.mjs unix:<path> dns:<ip>[:<port>] [watch-pid:<pid>]');
  process.exit(2);
}
const socketPath = listenSpec.slice('unix:'.length);
const resolver = new Resolver({ timeout: 2_000, tries: 2 });
resolver.setServers([`${dnsMatch[1]}:${dnsMatch[2] ?? '53'}`]);

async function addressOf(host) {
  if (isIP(host)) return host;
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(host)) throw new Error(`not a host name: ${JSON.stringify(host)}`);
  const [address] = await resolver.resolve4(host);
  if (!address) throw new Error(`${host} has no address`);
  return address;
}

function refuse(client, status, reason) {
  console.log(`refused: ${status} ${reason}`);
  client.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${reason}\n`);
}

const server = createServer((client) => {
  let head = Buffer.alloc(0);
  client.on('error', () => client.destroy());
  const onData = async (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_HEAD) refuse(client, '431 Request Header Fields Too Large', 'CONNECT head too large');
      return;
    }
    client.off('data', onData);
    client.pause();
    const [method, target] = head.subarray(0, head.indexOf('\r\n')).toString('latin1').split(' ');
    const rest = head.subarray(end + 4);
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(target ?? '');
    if (method !== 'CONNECT' || !match) return refuse(client, '405 Method Not Allowed', `only CONNECT host:port, not ${method} ${target}`);
    const host = match[1].replace(/^\[|\]$/g, '');
    const port = Number(match[2]);
    let address;
    try {
      address = await addressOf(host);
    } catch (err) {
      return refuse(client, '502 Bad Gateway', `cannot resolve ${host}: ${err.message}`);
    }
    const upstream = connect({ host: address, port });
    let established = false;
    upstream.setTimeout(10_000, () => upstream.destroy(new Error('connect timed out')));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      established = true;
      console.log(`CONNECT ${host}:${port} -> ${address}:${port}`);
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once('error', (err) => {
      if (!established) refuse(client, '502 Bad Gateway', `${host}:${port} (${address}): ${err.message}`);
      else client.destroy();
    });
    upstream.once('close', () => established && client.destroy());
    client.once('close', () => upstream.destroy());
  };
  client.on('data', onData);
});

try {
  unlinkSync(socketPath);
} catch {
  // No stale socket.
}
server.on('error', (err) => {
  console.error(`connect-proxy ${listenSpec}: ${err.message}`);
  process.exit(1);
});
server.listen(socketPath, () => console.log(`listening on ${listenSpec}, resolving through ${dnsSpec.slice(4)}`));
exitWith(watchSpec);
