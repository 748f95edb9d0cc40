/**
 * Typed, idempotent kernel reconcilers for the Raven data path. Each subsystem has a `*Reconciler` constructed with
 * an Exec (host or `NetnsExec`) and what it owns (links, devices, tables, rule priorities, sets, chains); feed it the
 * desired state with `reconcile(reconciler, desired)`, which reads the kernel, diffs purely (`diff*` functions) and
 * applies one batch (`ip -batch`, `bridge -batch`, `ipset restore`, `iptables-restore --noflush`, one `sysctl -w`).
 * Order across subsystems: links before what lives on them; cleanup in reverse, iptables before ipsets.
 */
export * from './errors.ts';
export * from './exec.ts';
export * from './cidr.ts';
export * from './reconciler.ts';
export * from './batch.ts';
export * from './links.ts';
export * from './addresses.ts';
export * from './routes.ts';
export * from './rules.ts';
export * from './neighbours.ts';
export * from './fdb.ts';
export * from './sysctl.ts';
export * from './ipset.ts';
export * from './iptables.ts';
