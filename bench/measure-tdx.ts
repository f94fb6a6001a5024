/**
 * `gmemlab measure tdx` speed. Run: `npm run build && npx tsx bench/measure-tdx.ts [image]`.
 * 1. End to end: `node dist/cli/gmemlab.js measure tdx --firmware IMAGE`, spawned N times (median
 *    wall time and peak RSS from /usr/bin/time when available), beside `node -e 0` in the same run.
 * 2. In process: runTdLaunch() (the whole modelled launch) beside one SHA-384 over the bytes the
 *    module hashes (128 x (#PAGE.ADD + 3 x #MR.EXTEND)).
 * Targets (issue 5): <= 40 ms above `node -e 0`, peak RSS < 60 MiB, in-process <= 1.5x bare hashing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tdxVmOf } from '../src/kernel/arch/tdx/index.js';
import { runTdLaunch } from '../src/measure/tdx/launch.js';

const image =
  process.argv[2] ??
  new URL('../../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd', import.meta.url).pathname;
const RUNS = 15;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number): string => `${x.toFixed(1)} ms`;

function spawnTimed(args: string[]): { ms: number; rssKiB?: number } {
  const hasTime = existsSync('/usr/bin/time');
  const t0 = performance.now();
  const r = hasTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...args], { encoding: 'utf8' })
    : spawnSync(process.execPath, args, { encoding: 'utf8' });
  const elapsed = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${r.stderr}`);
  const rss = hasTime ? Number(r.stderr.trim().split('\n').pop()) : undefined;
  return rss === undefined ? { ms: elapsed } : { ms: elapsed, rssKiB: rss };
}

const cli = new URL('../dist/cli/gmemlab.js', import.meta.url).pathname;
console.log(`image: ${image}`);
if (existsSync(cli)) {
  const base: number[] = [];
  const run: number[] = [];
  let rss = 0;
  for (let i = 0; i < RUNS; i++) {
    base.push(spawnTimed(['-e', '0']).ms);
    const r = spawnTimed([cli, 'measure', 'tdx', '--firmware', image]);
    run.push(r.ms);
    rss = Math.max(rss, r.rssKiB ?? 0);
  }
  const b = median(base);
  const c = median(run);
  console.log(`node -e 0:                 median ${ms(b)} (${RUNS} runs)`);
  console.log(
    `gmemlab measure tdx (CLI): median ${ms(c)}, +${ms(c - b)} over node -e 0 (target <= 40 ms), ratio ${(c / b).toFixed(2)}x`,
  );
  if (rss) console.log(`peak RSS: ${(rss / 1024).toFixed(1)} MiB (target < 60 MiB)`);
} else {
  console.log(`(no ${cli}: run \`npm run build\` for the end-to-end figures)`);
}

const bytes = new Uint8Array(readFileSync(image));
const probe = runTdLaunch(bytes);
const td = tdxVmOf(probe.host, probe.vmFd).td!;
const adds = td.calls.get('TDH.MEM.PAGE.ADD') ?? 0;
const exts = td.calls.get('TDH.MR.EXTEND') ?? 0;
const hashed = 128 * (adds + 3 * exts);
const buf = new Uint8Array(hashed).fill(0x5a);
for (let i = 0; i < 5; i++) {
  runTdLaunch(bytes);
  createHash('sha384').update(buf).digest();
}
const launch: number[] = [];
const hash: number[] = [];
for (let i = 0; i < RUNS; i++) {
  let t = performance.now();
  createHash('sha384').update(buf).digest();
  hash.push(performance.now() - t);
  t = performance.now();
  runTdLaunch(bytes);
  launch.push(performance.now() - t);
}
const h = median(hash);
const l = median(launch);
console.log(`bytes hashed by the module: ${hashed} (${adds} PAGE.ADD, ${exts} MR.EXTEND)`);
console.log(`one SHA-384 over them:      median ${ms(h)}`);
console.log(`runTdLaunch in process:     median ${ms(l)}, ratio ${(l / h).toFixed(2)}x (target <= 1.5x)`);
