/**
 * `gmemlab measure snp` speed: the CLI end to end (spawned, median of several runs) beside `node -e 0`,
 * the in-process launch (plan + host + PSP) beside one SHA-384 over the same image bytes, and the
 * CLI's peak RSS. Run with `npx tsx bench/measure-snp.ts` after `npm run build`; without
 * dist/cli/gmemlab.js the CLI is measured through a tiny script importing main() under tsx.
 * Targets (issue 4): CLI <= node -e 0 + 40 ms, peak RSS < 60 MiB, in-process <= 1.5x bare hashing.
 */
import { spawnSync } from 'node:child_process';
import { hash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSnpLaunch } from '../src/measure/snp/launch.js';
import { planSnpLaunch } from '../src/measure/snp/launch-plan.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ovmf = resolve(repo, '../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd');
const args = ['measure', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', ovmf];
const RUNS = 7;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Wall time (ms) and peak RSS (KiB, from /usr/bin/time when present) of one spawned command. */
function spawnTimed(cmd: string, argv: string[]): { ms: number; rssKiB?: number; out: string } {
  const timeBin = existsSync('/usr/bin/time');
  const t0 = performance.now();
  const r = timeBin
    ? spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...argv], { encoding: 'utf8' })
    : spawnSync(cmd, argv, { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr}`);
  const rss = timeBin ? Number(r.stderr.trim().split('\n').at(-1)) : undefined;
  return { ms, rssKiB: rss, out: r.stdout };
}

const built = resolve(repo, 'dist/cli/gmemlab.js');
let cli: [string, string[]];
if (existsSync(built)) cli = [process.execPath, [built, ...args]];
else {
  const shim = join(tmpdir(), 'gmemlab-measure-snp-shim.mts');
  writeFileSync(
    shim,
    `import { main } from ${JSON.stringify(resolve(repo, 'src/cli/measure-snp.ts'))};\nprocess.exitCode = await main(process.argv.slice(2));\n`,
  );
  cli = [process.execPath, ['--import', 'tsx', shim, ...args.slice(2)]];
  console.log('dist/cli/gmemlab.js not built: measuring src/cli/measure-snp.ts main() under tsx');
}

const bare: number[] = [];
const cliMs: number[] = [];
const rss: number[] = [];
let digest = '';
for (let i = 0; i < RUNS; i++) {
  bare.push(spawnTimed(process.execPath, ['-e', '0']).ms);
  const r = spawnTimed(cli[0], cli[1]);
  cliMs.push(r.ms);
  if (r.rssKiB !== undefined) rss.push(r.rssKiB);
  digest = r.out.trim();
}

const image = readFileSync(ovmf);
const inproc: number[] = [];
const hashing: number[] = [];
for (let i = 0; i < RUNS + 2; i++) {
  let t0 = performance.now();
  runSnpLaunch(planSnpLaunch(image, { vcpus: 4, vcpuSig: 0x800f12 }));
  const a = performance.now() - t0;
  t0 = performance.now();
  hash('sha384', image);
  const b = performance.now() - t0;
  if (i >= 2) {
    inproc.push(a);
    hashing.push(b);
  }
}

const f = (x: number): string => x.toFixed(1);
console.log(`digest                      ${digest}`);
console.log(`node -e 0 (median of ${RUNS})      ${f(median(bare))} ms`);
console.log(
  `CLI measure snp (median)    ${f(median(cliMs))} ms   (+${f(median(cliMs) - median(bare))} ms over node -e 0; target <= +40)`,
);
if (rss.length) console.log(`CLI peak RSS (max)          ${f(Math.max(...rss) / 1024)} MiB (target < 60)`);
console.log(`in-process launch (median)  ${f(median(inproc))} ms`);
console.log(`SHA-384 of the image        ${f(median(hashing))} ms`);
console.log(`ratio in-process / hashing  ${f(median(inproc) / median(hashing))}x (target <= 1.5x)`);
