export declare const GO_MINIMUM: [number, number];
export declare function goVersion(text: string): [number, number] | undefined;
export declare function atLeast(have: readonly number[], want: readonly number[]): boolean;
export declare function preflight(opts?: { apt?: boolean; binaries?: boolean; kernel?: boolean; diskGiB?: number }): string[];
