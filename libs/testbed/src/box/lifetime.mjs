// How the box's helper scripts (relay.mjs, connect-proxy.mjs) end: on SIGTERM/SIGINT, and, given `watch-pid:<pid>`,
// once that process is gone (so an attached helper never outlives the test that started it).
export function exitWith(watchSpec) {
  if (watchSpec?.startsWith('watch-pid:')) {
    const pid = Number(watchSpec.slice('watch-pid:'.length));
    setInterval(() => {
      try {
        process.kill(pid, 0);
      } catch {
        process.exit(0);
      }
    }, 1_000).unref();
  }
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
}
