export declare const ENVTEST_TARGETS: Record<'etcd' | 'kubernetes', string[]>;
export declare function planBinaries(
  targets: readonly string[],
  state: { assets?: { dir: string; files: readonly string[] }; built: ReadonlySet<string> },
): { fromAssets: string[]; fromCache: string[]; build: string[]; message?: string };
