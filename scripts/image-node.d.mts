export declare function imageNodeVersion(root: string): string;
export declare const binCacheRoot: () => string;
export declare const imageNodePath: (version: string) => string;
export declare function ensureImageNode(root: string, say: (msg: string) => void): string;
