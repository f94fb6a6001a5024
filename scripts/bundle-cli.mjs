// The CLI bundles (scripts/bundle.mjs runs this on dist/cli; test/cli/built-cli.test.ts on a temporary
// directory). OUTDIR is this function's alone: it is emptied first (in dist/cli that removes tsc's
// per-file outputs: nothing imports them, the package exports dist/index.js, and they would not load
// under OUTDIR/package.json):
// - OUTDIR/gmemlab.js: the bin, CommonJS (src/cli/start.ts; OUTDIR/package.json says commonjs), so
//   `gmemlab measure snp|tdx` starts without Node's ES module loader.
// - OUTDIR/measure-snp.js, measure-tdx.js: one self-contained, minified CommonJS file each (kernel +
//   measure code, nothing from flow/, report/ or node_modules), run by the bin through a V8 code cache,
//   TOOL.code-cache, written after one representative run of the tool (scripts/code-cache.ts) and
//   checked to be accepted by a fresh `node`. Fails if a tool or the bin imports anything but a node:
//   builtin.
// - OUTDIR/gmemlab.mjs and its chunks (*.mjs): the commander CLI (src/cli/gmemlab.ts); `run`,
//   `matrix`, `kernels` are lazily loaded chunks.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The image the code caches are warmed up on (outside this repository, as the tests' fixtures). */
export const WARM_UP_IMAGE = resolve(root, '../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd');

export async function bundleCli(outdir = join(root, 'dist/cli'), warmUpImage = WARM_UP_IMAGE) {
  const src = (f) => join(root, 'src/cli', f);
  const measureTools = ['snp', 'tdx'].filter((t) => existsSync(src(`measure-${t}.ts`)));

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
    entryPoints: [src('gmemlab.ts')],
    format: 'esm',
    splitting: true,
    outExtension: { '.js': '.mjs' },
  });

  const bin = await build({
    ...common,
    entryPoints: { gmemlab: src('start.ts') },
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    minify: true,
  });

  const measure = measureTools.length
    ? await build({
        ...common,
        entryPoints: measureTools.map((t) => src(`measure-${t}.ts`)),
        format: 'cjs',
        // Minified: less to read and parse at start-up. Error classes set `name` themselves.
        minify: true,
      })
    : undefined;

  // The bin and the measurement path must load nothing but node builtins besides their own files.
  const selfContained = { ...bin.metafile.outputs, ...measure?.metafile.outputs };
  for (const [file, out] of Object.entries(selfContained)) {
    const bad = out.imports.filter((i) => !i.path.startsWith('node:'));
    if (bad.length) {
      throw new Error(`${file} imports ${bad.map((i) => i.path).join(', ')}: it must be self-contained`);
    }
  }

  // The code caches, each written by a fresh `node` after a representative run of its tool; without
  // the warm-up image the run is `--help` (top level and option parsing only).
  const warmUp = existsSync(warmUpImage)
    ? {
        snp: ['--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', warmUpImage],
        tdx: ['--firmware', warmUpImage],
      }
    : { snp: ['--help'], tdx: ['--help'] };
  const caches = {};
  if (measure) {
    const tmp = mkdtempSync(join(tmpdir(), 'gmemlab-code-cache-'));
    try {
      const writer = join(tmp, 'code-cache.cjs');
      await build({
        ...common,
        outdir: undefined,
        outfile: writer,
        metafile: false,
        entryPoints: [join(root, 'scripts/code-cache.ts')],
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
        const file = join(outdir, `measure-${t}.js`);
        const bytes = node(
          'require(process.argv[1]).writeCodeCache(process.argv[2], JSON.parse(process.argv[3])).then((n) => console.log(n))',
          writer,
          file,
          JSON.stringify(warmUp[t]),
        );
        const state = node(
          'console.log(require(process.argv[1]).codeCacheState(process.argv[2]))',
          writer,
          file,
        );
        if (state !== 'accepted') throw new Error(`code cache of ${file}: ${state} by a fresh node`);
        caches[t] = { bytes: Number(bytes), warmUp: warmUp[t], state };
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { cli, bin, measure, caches, selfContained: Object.keys(selfContained) };
}
