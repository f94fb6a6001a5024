// Bundles the CLI so `gmemlab` starts fast, then writes the flow JSON Schema. dist/cli is this
// script's alone (tsc's per-file outputs there are removed: nothing imports them, the package exports
// dist/index.js, and they would not load under dist/cli/package.json):
// - dist/cli/gmemlab.js: the bin, CommonJS (src/cli/start.ts; dist/cli/package.json says commonjs),
//   so `gmemlab measure snp|tdx` starts without Node's ES module loader.
// - dist/cli/measure-snp.js, measure-tdx.js: one self-contained, minified CommonJS file each (kernel
//   + measure code, nothing from flow/, report/ or node_modules), run by the bin through a V8 code
//   cache, TOOL.code-cache, written here after one representative run of the tool (scripts/code-cache.ts)
//   and checked to be accepted by a fresh `node`. The build fails if a tool or the bin imports anything
//   but a node: builtin.
// - dist/cli/gmemlab.mjs and its chunks (*.mjs): the commander CLI (src/cli/gmemlab.ts); `run`,
//   `matrix`, `kernels` are lazily loaded chunks.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const outdir = 'dist/cli';
const measureTools = ['snp', 'tdx'].filter((t) => existsSync(`src/cli/measure-${t}.ts`));

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);

const common = {
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  metafile: true,
  legalComments: 'none',
  packages: 'external',
};

const cli = await build({
  ...common,
  entryPoints: ['src/cli/gmemlab.ts'],
  format: 'esm',
  splitting: true,
  outExtension: { '.js': '.mjs' },
});

const bin = await build({
  ...common,
  entryPoints: { gmemlab: 'src/cli/start.ts' },
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  minify: true,
});

const measure = measureTools.length
  ? await build({
      ...common,
      entryPoints: measureTools.map((t) => `src/cli/measure-${t}.ts`),
      format: 'cjs',
      // Minified: less to read and parse at start-up. Error classes set `name` themselves.
      minify: true,
    })
  : undefined;

// The bin and the measurement path must load nothing but node builtins besides their own files.
for (const [file, out] of Object.entries({ ...bin.metafile.outputs, ...measure?.metafile.outputs })) {
  const bad = out.imports.filter((i) => !i.path.startsWith('node:'));
  if (bad.length) {
    throw new Error(`${file} imports ${bad.map((i) => i.path).join(', ')}: it must be self-contained`);
  }
}

// The code caches, each written by a fresh `node` after a representative run of its tool.
const fixture = resolve(root, '../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd');
const warmUp = {
  snp: ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', fixture],
  tdx: ['--firmware', fixture],
};
if (measure) {
  const tmp = mkdtempSync(join(tmpdir(), 'gmemlab-code-cache-'));
  try {
    const writer = join(tmp, 'code-cache.cjs');
    await build({
      ...common,
      outdir: undefined,
      outfile: writer,
      metafile: false,
      entryPoints: ['scripts/code-cache.ts'],
      format: 'cjs',
    });
    // No NODE_OPTIONS: V8 refuses a cache made under other V8 flags, and the bin runs under plain node.
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const node = (code, ...args) => {
      const r = spawnSync(process.execPath, ['-e', code, ...args], { encoding: 'utf8', env });
      if (r.status !== 0) throw new Error(`code cache: ${r.stderr.trim() || `exit ${r.status}`}`);
      return r.stdout.trim();
    };
    for (const t of measureTools) {
      const file = resolve(outdir, `measure-${t}.js`);
      // Without the fixture (outside this repository), the run is `--help`: top level and option parsing.
      const argv = existsSync(fixture) ? warmUp[t] : ['--help'];
      const bytes = node(
        'require(process.argv[1]).writeCodeCache(process.argv[2], JSON.parse(process.argv[3])).then((n) => console.log(n))',
        writer,
        file,
        JSON.stringify(argv),
      );
      const state = node(
        'console.log(require(process.argv[1]).codeCacheState(process.argv[2]))',
        writer,
        file,
      );
      if (state !== 'accepted') throw new Error(`code cache of ${file}: ${state} by a fresh node`);
      console.log(
        `${outdir}/measure-${t}.code-cache: ${(bytes / 1024).toFixed(0)} KiB after \`measure ${t} ${existsSync(fixture) ? '<fixture>' : '--help'}\`, accepted`,
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// `node scripts/bundle.mjs --metafile FILE`: esbuild's metafiles, for esbuild's analyzer.
const metaAt = process.argv.indexOf('--metafile');
if (metaAt >= 0 && process.argv[metaAt + 1]) {
  writeFileSync(
    process.argv[metaAt + 1],
    JSON.stringify({ cli: cli.metafile, bin: bin.metafile, measure: measure?.metafile ?? null }),
  );
}
for (const [file, out] of Object.entries({ ...bin.metafile.outputs, ...measure?.metafile.outputs })) {
  console.log(`${file}: ${(out.bytes / 1024).toFixed(0)} KiB, self-contained`);
}

// dist/flow.schema.json from the zod schema (package export "./flow.schema.json").
await import('./flow-schema.mjs');
