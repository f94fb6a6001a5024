// Bundles the CLI so `gmemlab` starts fast, then writes the flow JSON Schema.
// - dist/cli/gmemlab.js: a small dispatcher; `run`, `matrix`, `kernels` are lazily loaded chunks, and
//   commander itself is loaded only after `measure snp|tdx` has been ruled out.
// - dist/cli/measure-snp.js, measure-tdx.js: one self-contained, minified file each (kernel + measure
//   code, nothing from flow/, report/ or node_modules), loaded by `gmemlab measure snp|tdx` through a
//   computed import. The build fails if one of them imports anything but a node: builtin.
// Stale outputs never pile up: `npm run build` empties dist/ first, and this script removes its own
// earlier outputs (hashed chunks and entries) before writing new ones.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const outdir = 'dist/cli';
const measureTools = ['src/cli/measure-snp.ts', 'src/cli/measure-tdx.ts'].filter((f) => existsSync(f));

if (existsSync(outdir)) {
  for (const f of readdirSync(outdir)) {
    // esbuild's outputs: entries, and chunks named NAME-HASH.js (tsc writes NAME.js / NAME.d.ts).
    if (/^(gmemlab|measure-snp|measure-tdx)\.js$|-[A-Z0-9]{8}\.js$/.test(f)) rmSync(join(outdir, f));
  }
}

const common = {
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
  metafile: true,
  legalComments: 'none',
};

const cli = await build({
  ...common,
  entryPoints: ['src/cli/gmemlab.ts'],
  splitting: true,
  packages: 'external',
});

const measure = measureTools.length
  ? await build({
      ...common,
      entryPoints: measureTools,
      splitting: false,
      // Minified: less to read and parse at start-up. Error classes set `name` themselves.
      minify: true,
      packages: 'external',
    })
  : undefined;

// The measurement path must load nothing but node builtins besides its own file.
if (measure) {
  for (const [file, out] of Object.entries(measure.metafile.outputs)) {
    const bad = out.imports.filter((i) => !i.path.startsWith('node:'));
    if (bad.length) {
      throw new Error(
        `${file} imports ${bad.map((i) => i.path).join(', ')}: the measure path must be self-contained`,
      );
    }
  }
}
// `node scripts/bundle.mjs --metafile FILE`: esbuild's metafiles, for esbuild's analyzer.
const metaAt = process.argv.indexOf('--metafile');
if (metaAt >= 0 && process.argv[metaAt + 1]) {
  writeFileSync(
    process.argv[metaAt + 1],
    JSON.stringify({ cli: cli.metafile, measure: measure?.metafile ?? null }),
  );
}
for (const [file, out] of Object.entries({ ...cli.metafile.outputs, ...measure?.metafile.outputs })) {
  if (/measure-(snp|tdx)\.js$/.test(file))
    console.log(`${file}: ${(out.bytes / 1024).toFixed(0)} KiB, self-contained`);
}

// dist/flow.schema.json from the zod schema (package export "./flow.schema.json").
await import('./flow-schema.mjs');
