// `npm run bench`: runs every benchmark in bench/ one after another, each in its own process so
// peak RSS figures are per benchmark. Words before `--` pick benchmarks by name (all when none);
// arguments after it are passed to every benchmark run:
//   node bench/run.mjs conversion -- 262144 --hot 1024
//
// Node runs each benchmark with a 64 MiB young-generation semi-space (V8's default on 64-bit is
// 16 MiB). The million-page traces allocate ~3.4 KB per page, most of it dead within the syscall,
// and keep ~0.4 KB per page of final state; with the default, V8 runs ~210 young-generation
// collections per million pages, each paying a fixed cost (roots, remembered sets) on top of the
// objects it copies. With 64 MiB: ~68 of them; on the conversion trace, GC pauses 0.9-1.0 s -> 0.6-0.7 s,
// wall time a median 7% lower (7 alternating pairs, +5% to -27%), peak RSS 40-90 MiB higher
// (session 11). A program that embeds gmemlab for big traces can pass the same flag. Each
// benchmark prints the flags it ran with.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const sep = args.indexOf('--');
const only = (sep < 0 ? args : args.slice(0, sep)).filter((a) => !a.startsWith('-'));
const passed = sep < 0 ? [] : args.slice(sep + 1);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

let failed = 0;
for (const f of benches) {
  process.stdout.write(`\n=== bench/${f}\n`);
  const node = ['--import', 'tsx', '--expose-gc', '--max-semi-space-size=64'];
  const r = spawnSync(process.execPath, [...node, join(here, f), ...passed], {
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${f} exited with ${r.status ?? r.signal}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
