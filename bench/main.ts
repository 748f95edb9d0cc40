// npm run bench -- <pickup|tunnel|proxy|nat> : benchmarks that print figures and ratios measured in one run.
const benches: Record<string, () => Promise<void>> = {
  pickup: async () => (await import('./pickup.ts')).run(),
  tunnel: async () => (await import('./tunnel.ts')).run(),
  proxy: async () => (await import('./proxy.ts')).run(),
  nat: async () => (await import('./nat.ts')).run(),
};

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}>`);
  process.exit(2);
}
bench().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
