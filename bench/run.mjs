// `npm run bench`: runs every benchmark in bench/ one after another, each in its own process so
// peak RSS figures are per benchmark. Words before `--` pick benchmarks by name (all when none);
// arguments after it are passed to every benchmark run:
//   node bench/run.mjs conversion -- 262144 --hot 1024
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
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', join(here, f), ...passed], {
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${f} exited with ${r.status ?? r.signal}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
