// A byte relay for the cluster-in-a-box: lets processes inside node network namespaces reach the apiserver, which
// listens on 127.0.0.1 in the root namespace, without any address or route in the root namespace. A unix socket is a
// file, so it is reachable from every network namespace: the root namespace relays unix → TCP, each node namespace
// relays its own 127.0.0.1:6443 → that unix socket.
//
//   node relay.mjs <listen> <connect> [<listen> <connect> ...] [watch-pid:<pid>]
// <listen> and <connect> are unix:<path> or tcp:<host>:<port>; with watch-pid the relay exits once that process is gone.
import { unlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { exitWith } from './lifetime.mjs';

function parse(spec) {
  if (spec?.startsWith('unix:')) return { path: spec.slice('unix:'.length) };
  const match = /^tcp:(.+):(\d+)$/.exec(spec ?? '');
  if (!match) {
    console.error(`usage: relay.mjs <unix:PATH|tcp:HOST:PORT> <unix:PATH|tcp:HOST:PORT> (got ${spec})`);
    process.exit(2);
  }
  return { host: match[1], port: Number(match[2]) };
}

const args = process.argv.slice(2);
const watchSpec = args.at(-1)?.startsWith('watch-pid:') ? args.pop() : undefined;
if (args.length === 0 || args.length % 2 !== 0) {
  console.error('usage: relay.mjs <listen> <connect> [<listen> <connect> ...] [watch-pid:<pid>]');
  process.exit(2);
}

function relay(listenSpec, connectSpec) {
  const listenAt = parse(listenSpec);
  const target = parse(connectSpec);
  if (listenAt.path) {
    try {
      unlinkSync(listenAt.path);
    } catch {
      // No stale socket.
    }
  }
  const server = createServer((client) => {
    const upstream = connect(target);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.pipe(upstream).pipe(client);
    for (const socket of [client, upstream]) {
      socket.on('error', close);
      socket.on('close', close);
    }
  });
  server.on('error', (err) => {
    console.error(`relay ${listenSpec}: ${err.message}`);
    process.exit(1);
  });
  return new Promise((resolve) => server.listen(listenAt, resolve));
}

// One process for every pair: a node's relays cost one Node runtime, not one each.
const pairs = [];
for (let i = 0; i < args.length; i += 2) pairs.push([args[i], args[i + 1]]);
await Promise.all(pairs.map(([listen, target]) => relay(listen, target)));
console.log(`listening on ${pairs.map(([listen, target]) => `${listen}, relaying to ${target}`).join('; ')}`);
exitWith(watchSpec);
