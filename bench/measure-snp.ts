/**
 * `gmemlab measure snp` speed (issue 4). Run with `npm run build && npx tsx bench/measure-snp.ts`.
 * Targets: (a) the CLI costs at most 40 ms more than `node -e 0`; (b) its peak RSS is under 60 MiB;
 * (c) the in-process launch (plan + host + PSP) is within 1.5x of one SHA-384 over the image bytes.
 *
 * Each figure is measured in the same round as its baseline (bench/lib/cli-bench.ts): spawns of
 * `node -e 0` alternate with spawns of the CLI; each launch sits between two bare hashes, and the
 * ratio is the median over launches of each launch over the mean of its two neighbours; the best
 * of the rounds is reported, with every round's ratio beside it. The in-process rounds follow
 * BENCH_WARMUP (default 150) launches: start-up and compilation are the CLI figures' part.
 * Baselines for (c): "one SHA-384 over the image" is the issue's target. The SNP algorithm itself
 * hashes every measured page on its own and then one 112-byte PAGE_INFO per page (SNP ABI §8.17),
 * so the bench also prints that cost, computed directly over the same pages and paired with its own
 * neighbouring hashes: the part of the ratio the algorithm itself takes, whatever the model does.
 * The model hashes a repeated page once per launch (a quarter of Debian's OVMF.fd is erased flash),
 * so it can come in below that figure.
 */
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SNP_PAGE_INFO_SIZE, SNP_PAGE_SIZE } from '../src/kernel/arch/sev/launch-digest.js';
import { benchCli, f, median, ROUNDS, RUNS, timeIt } from './lib/cli-bench.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ovmf = process.argv[2] ?? resolve(repo, '../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd');
const args = ['measure', 'snp', '--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf', ovmf];

benchCli(resolve(repo, 'dist/cli/gmemlab.js'), args, 'measure snp', 'digest');

// In process: plan + host + launch, beside the baselines, alternating. The launch is the one the
// command runs: its bundle, dist/cli/measure-snp.js (`npm run build`), not the sources, which run
// ~15% slower under tsx's loader as separate modules.
type Launch = typeof import('../src/cli/measure-snp.js');
const { planSnpLaunch, runSnpLaunch } = createRequire(import.meta.url)(
  resolve(repo, 'dist/cli/measure-snp.js'),
) as Pick<Launch, 'planSnpLaunch' | 'runSnpLaunch'>;
const image = readFileSync(ovmf);
const WARMUP = Math.max(5, Number(process.env['BENCH_WARMUP'] ?? 150));
const launch = (): Uint8Array => runSnpLaunch(planSnpLaunch(image, { vcpus: 4, vcpuSig: 0x800f12 })).digest;
// The pages the PSP measures in this launch, for the per-page figure: contents hashed for NORMAL/VMSA.
const measured: { contents?: Uint8Array }[] = [];
runSnpLaunch(planSnpLaunch(image, { vcpus: 4, vcpuSig: 0x800f12 }), {
  onPage: (p) =>
    measured.push(p.contents.some((b) => b !== 0) ? { contents: new Uint8Array(SNP_PAGE_SIZE) } : {}),
});
const normal = measured.filter((p) => p.contents).length;
// Per-page hashing: the same number of page hashes over image pages (VMSA pages hash as any page), then one
// PAGE_INFO hash per measured page.
const floorPages = Array.from({ length: normal }, (_, i) =>
  image.subarray((i * SNP_PAGE_SIZE) % image.length, ((i * SNP_PAGE_SIZE) % image.length) + SNP_PAGE_SIZE),
);
// Digests taken as 'binary' strings and written into PAGE_INFO: the cheapest node:crypto call.
const pageInfo = Buffer.alloc(SNP_PAGE_INFO_SIZE);
const floor = (): void => {
  for (const p of floorPages) pageInfo.write(hash('sha384', p, 'binary'), 0x30, 48, 'binary');
  for (let i = 0; i < measured.length; i++)
    pageInfo.write(hash('sha384', pageInfo, 'binary'), 0, 48, 'binary');
};
// Warm-up: the in-process figure is the steady state (the CLI figures above include start-up and
// compilation). A launch runs many functions once (each ioctl's set-up path): V8 tiers them up only
// after some hundred launches, which until session 9 happened inside the measured rounds (round 1
// was always the slowest).
for (let i = 0; i < WARMUP; i++) {
  launch();
  hash('sha384', image);
  floor();
}
// Each launch is timed between two bare hashes and compared with their mean: the machine's speed
// drifts (shared CPUs), and a ratio of neighbours cancels the drift that separate medians keep. The
// per-page floor is timed the same way, after the second hash, so that both run after a bare hash:
// its ratio is what the SNP algorithm's own hashing costs in that round, with no model at all.
const IN_RUNS = Math.max(RUNS, 60);
let bestIn:
  | { inproc: number; bare: number; floor: number; ratio: number; floorRatio: number; minRatio: number }
  | undefined;
const roundRatios: number[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const inproc: number[] = [];
  const bare: number[] = [];
  const ratios: number[] = [];
  const fl: number[] = [];
  const flRatios: number[] = [];
  for (let i = 0; i < IN_RUNS; i++) {
    const before = timeIt(() => hash('sha384', image));
    const l = timeIt(launch);
    const after = timeIt(() => hash('sha384', image));
    const fp = timeIt(floor);
    const last = timeIt(() => hash('sha384', image));
    inproc.push(l);
    bare.push(before, after, last);
    ratios.push(l / ((before + after) / 2));
    fl.push(fp);
    flRatios.push(fp / ((after + last) / 2));
  }
  const r = {
    inproc: median(inproc),
    bare: median(bare),
    floor: median(fl),
    ratio: median(ratios),
    floorRatio: median(flRatios),
    minRatio: Math.min(...inproc) / Math.min(...bare),
  };
  console.log(
    `round ${round}: in-process ${f(r.inproc)} ms, SHA-384 of the image ${f(r.bare)} ms, ratio ${r.ratio.toFixed(2)}x (fastest to fastest ${r.minRatio.toFixed(2)}x), SNP per-page hashing ${f(r.floor)} ms = ${r.floorRatio.toFixed(2)}x`,
  );
  roundRatios.push(r.ratio);
  if (!bestIn || r.ratio < bestIn.ratio) bestIn = r;
}
console.log(`in-process launch (median)     ${f(bestIn!.inproc)} ms`);
console.log(
  `one SHA-384 over the image     ${f(bestIn!.bare)} ms (${image.length} bytes; the target's baseline)`,
);
console.log(
  `ratio in-process / SHA-384     ${bestIn!.ratio.toFixed(2)}x (target <= 1.5x; best of ${ROUNDS} rounds: ${roundRatios.map((x) => x.toFixed(2)).join(', ')}; each the median over ${IN_RUNS} launches of the launch over the mean of the hashes just before and after it; in that round fastest launch over fastest hash ${bestIn!.minRatio.toFixed(2)}x)`,
);
console.log(
  `SNP per-page hashing           ${f(bestIn!.floor)} ms (${normal} page hashes + ${measured.length} PAGE_INFO hashes computed directly, no model: ${bestIn!.floorRatio.toFixed(2)}x of the SHA-384, paired the same way; the launch is ${(bestIn!.ratio - bestIn!.floorRatio).toFixed(2)}x above it, though it hashes a repeated page once)`,
);
