// Bundles the CLI so `gmemlab` starts fast: one ESM entry, subcommands split into lazily loaded chunks.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/gmemlab.ts'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
