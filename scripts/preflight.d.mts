export declare const GO_MINIMUM: [number, number];
export declare function goVersion(text: string): [number, number] | undefined;
export declare function atLeast(have: readonly number[], want: readonly number[]): boolean;
export interface PreflightSteps { apt?: boolean; binaries?: boolean; kernel?: boolean; diskGiB?: number }
export interface PreflightFacts {
  root: boolean;
  aptGet: boolean;
  /** [major, minor] of `go version`; undefined when Go is missing. */
  go: readonly number[] | undefined;
  /** Why the kernel test in a network namespace failed; undefined when it worked or was not tried. */
  kernelFailure: string | undefined;
  home: string;
  freeGiB: number;
}
export declare function gatherFacts(steps?: PreflightSteps): PreflightFacts;
export declare function problems(steps: PreflightSteps, facts: PreflightFacts): string[];
export declare function preflight(steps?: PreflightSteps): string[];
