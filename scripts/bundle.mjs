// Bundles the CLI so `gmemlab` starts fast: one ESM entry, subcommands split into lazily loaded chunks.
// The measurement tools (src/cli/measure-snp.ts, measure-tdx.ts) are entries of their own, loaded by
// `gmemlab measure snp|tdx` through a computed import. Then the flow JSON Schema is written.
import { existsSync } from 'node:fs';
import { build } from 'esbuild';

const measureTools = ['src/cli/measure-snp.ts', 'src/cli/measure-tdx.ts'].filter((f) => existsSync(f));

await build({
  entryPoints: ['src/cli/gmemlab.ts', ...measureTools],
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

// dist/flow.schema.json from the zod schema (package export "./flow.schema.json").
await import('./flow-schema.mjs');
