/**
 * Shared by the `gmemlab measure` benches: run settings, medians, and the CLI figures (wall time
 * against `node -e 0`, peak RSS) measured in the same rounds as their baseline.
 *
 * A round is RUNS (>= 15) spawns of `node -e 0` alternating with RUNS spawns of the CLI; medians
 * per round; ROUNDS rounds (BENCH_ROUNDS, default 3) and the best round is reported, because other
 * processes on a shared machine only ever make a run slower.
 * Peak RSS: the CLI is spawned with `--require` of a tiny script that writes
 * process.resourceUsage().maxRSS at exit (no /usr/bin/time needed).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const RUNS = Math.max(15, Number(process.env['BENCH_RUNS'] ?? 15));
export const ROUNDS = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? 3));

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const f = (x: number): string => x.toFixed(1);

/** Wall time of `fn` (ms). */
export function timeIt(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** Wall time of one spawn of node (ms); throws if the command fails. */
function spawnMs(argv: string[]): { ms: number; out: string; err: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, out: r.stdout, err: r.stderr };
}

/**
 * Targets (a) and (b) of the measure benches: the built CLI `built` run with `args` costs at most
 * 40 ms more than `node -e 0`, and its peak RSS is under 60 MiB. Prints the figures; `outLabel`
 * names what the CLI prints (its last output is shown). Without a build, says so and returns.
 */
export function benchCli(built: string, args: string[], name: string, outLabel: string): void {
  if (!existsSync(built)) {
    console.log(`(no ${built}: run \`npm run build\` for the CLI figures)`);
    return;
  }
  const cli = [built, ...args];
  let best: { bare: number; cli: number } | undefined;
  let out = '';
  for (let round = 1; round <= ROUNDS; round++) {
    const bare: number[] = [];
    const run: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      bare.push(spawnMs(['-e', '0']).ms);
      const r = spawnMs(cli);
      run.push(r.ms);
      out = r.out.trim();
    }
    const b = median(bare);
    const c = median(run);
    console.log(
      `round ${round}: node -e 0 median ${f(b)} ms, CLI median ${f(c)} ms, delta +${f(c - b)} ms (${RUNS} runs each)`,
    );
    if (!best || c - b < best.cli - best.bare) best = { bare: b, cli: c };
  }
  const rssProbe = join(tmpdir(), `gmemlab-maxrss-${process.pid}.cjs`);
  writeFileSync(
    rssProbe,
    "process.on('exit', () => { const u = process.resourceUsage(); require('node:fs').writeSync(2, '\\n@maxrss ' + u.maxRSS + ' ' + (u.userCPUTime + u.systemCPUTime) + '\\n'); });\n",
  );
  // Peak RSS (KiB) and CPU time (user + system, ms: less disturbed than wall time by other processes).
  const probe = (argv: string[]): { rss: number; cpu: number } => {
    const m = /@maxrss (\d+) (\d+)/.exec(spawnMs(['--require', rssProbe, ...argv]).err);
    return { rss: Number(m?.[1] ?? 0), cpu: Number(m?.[2] ?? 0) / 1000 };
  };
  let rss = 0;
  let bareRss = 0;
  const cpu: number[] = [];
  const bareCpu: number[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const c = probe(cli);
      rss = Math.max(rss, c.rss);
      cpu.push(c.cpu);
      const b = probe(['-e', '0']);
      bareRss = b.rss;
      bareCpu.push(b.cpu);
    }
  } finally {
    rmSync(rssProbe, { force: true });
  }
  console.log(`${outLabel.padEnd(30)} ${out}`);
  console.log(`node -e 0 (median, best round) ${f(best!.bare)} ms`);
  console.log(
    `${`CLI ${name} (median)`.padEnd(30)} ${f(best!.cli)} ms   delta +${f(best!.cli - best!.bare)} ms (target <= +40 ms)`,
  );
  console.log(
    `CLI peak RSS (max of 5)        ${f(rss / 1024)} MiB (target < 60 MiB; node -e 0: ${f(bareRss / 1024)} MiB)`,
  );
  console.log(
    `CLI CPU time (median of 5)     ${f(median(cpu))} ms user+sys, delta +${f(median(cpu) - median(bareCpu))} ms (node -e 0: ${f(median(bareCpu))} ms)`,
  );
  // `gmemlab measure TOOL`: is the tool's V8 code cache (scripts/bundle-cli.mjs) used by a plain node?
  if (args[0] === 'measure' && args[1]) {
    const tool = join(dirname(built), `measure-${args[1]}.js`);
    if (existsSync(tool)) {
      // Asked of a fresh node without this process's V8 flags (bench/run.mjs adds --expose-gc,
      // and V8 refuses a cache made under other flags).
      const loader = new URL('../../src/cli/tool-loader.ts', import.meta.url).href;
      const script = `import { loadTool } from ${JSON.stringify(loader)}; import { createRequire } from 'node:module'; process.stdout.write(loadTool(${JSON.stringify(tool)}, createRequire(${JSON.stringify(tool)})).cache);`;
      const state = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
      }).stdout;
      console.log(`${`code cache (measure-${args[1]}.js)`.padEnd(30)} ${state} by node ${process.version}`);
    }
  }
}
