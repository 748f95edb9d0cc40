export declare function progressLine(what: string, elapsedMs: number): string;
export declare function runWithProgress(what: string, cmd: string, argv: string[], opts: { cwd: string; say: (line: string) => void; intervalMs?: number }): Promise<void>;
