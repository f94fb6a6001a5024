import type { BuildResult } from 'esbuild';

export const WARM_UP_IMAGE: string;

export interface CodeCacheBuilt {
  /** Bytes of V8 data. */
  bytes: number;
  /** The tool's arguments in the warm-up run. */
  warmUp: string[];
  /** What a fresh `node` made of it (the build fails unless 'accepted'). */
  state: string;
}

/** Bundle the CLI into `outdir` (default dist/cli), which it empties first. */
export function bundleCli(
  outdir?: string,
  warmUpImage?: string,
): Promise<{
  cli: BuildResult;
  bin: BuildResult;
  measure: BuildResult | undefined;
  caches: Partial<Record<'snp' | 'tdx', CodeCacheBuilt>>;
  selfContained: string[];
}>;
