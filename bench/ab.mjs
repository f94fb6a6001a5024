// `node bench/ab.mjs <git-rev> [--pairs N] [--interleaved] [-- pages ...]`: is the working tree's
// model faster than revision <rev>'s on the conversion trace?
//
// Why not two runs one after the other: on a shared machine the speed of a run drifts by +-20% over
// tens of seconds (other tenants' memory traffic; CPU time follows wall time, so it is not
// descheduling), which hides any change below ~10%. Here each pair runs both models *at the same
// time*, one process each, so a slow phase slows both; the ratio of the pair is what counts. Two
// identical builds measured this way differ by +-6% per pair (session 12), and the median of the
// ratios over N pairs settles far closer than that.
//
// --interleaved: both models in one process instead, batch by batch (bench/lib/interleave.ts), N
// repetitions of a 262144-page trace by default, GC pauses and the final ordering left out. Two
// identical builds differ by up to ~7% per repetition there and their median over 16 by ~1.5%
// (session 16, against 0.81-1.21 for same-time pairs that day), and a repetition takes a fraction
// of a pair's time; but it compares
// the builds' own work only, not what a change does to collections, and a change that keeps
// instances alive at module level looks faster than it is (see bench/lib/interleave.ts).
//
// <rev> is checked out into a temporary git worktree (with this tree's node_modules), and both
// trees run this tree's harness (bench/), so only src/ differs. Prints each pair's us/page and the
// ratio working tree / <rev> (< 1: the working tree is faster), then the medians.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The node flags of `npm run bench` (bench/run.mjs), for every script this runs. */
const NODE = ['--import', 'tsx', '--expose-gc', '--max-semi-space-size=64'];
const args = process.argv.slice(2);
const sep = args.indexOf('--');
const own = sep < 0 ? args : args.slice(0, sep);
const traceArgs = sep < 0 ? [] : args.slice(sep + 1);
const rev = own.find((a, i) => !a.startsWith('-') && own[i - 1] !== '--pairs');
const pairsAt = own.indexOf('--pairs');
const interleaved = own.includes('--interleaved');
const pairs = pairsAt < 0 ? (interleaved ? 8 : 5) : Number(own[pairsAt + 1]);
if (rev === undefined || !Number.isSafeInteger(pairs) || pairs < 1) {
  console.error(
    'usage: node bench/ab.mjs <git-rev> [--pairs N] [--interleaved] [-- conversion-trace arguments]',
  );
  process.exit(2);
}

/** A git command's output; its stderr (progress, fatal lines) is kept out of ours. */
function git(...a) {
  return execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

let commit;
try {
  commit = git('rev-parse', '--verify', `${rev}^{commit}`);
} catch {
  console.error(`ab: '${rev}' is not a revision of this repository`);
  process.exit(2);
}
const other = mkdtempSync(join(tmpdir(), 'gmemlab-ab-'));
git('worktree', 'add', '--detach', '--force', other, commit);
try {
  symlinkSync(join(root, 'node_modules'), join(other, 'node_modules'));
  // The same harness in both trees: only the model (src/) differs.
  cpSync(join(root, 'bench'), join(other, 'bench'), { recursive: true });
  console.log(
    interleaved
      ? `A/B on the conversion trace: working tree vs ${rev} (${commit.slice(0, 12)}), ${pairs} repetitions interleaved in one process (GC pauses and the final ordering left out)`
      : `A/B on the conversion trace: working tree vs ${rev} (${commit.slice(0, 12)}), ${pairs} pairs run two at a time`,
  );
  const ratios = [];
  const cur = [];
  const base = [];
  const results = interleaved ? await interleave(root, other, pairs) : undefined;
  for (let p = 1; p <= pairs; p++) {
    const [a, b] = results ? results[p - 1] : await Promise.all([trace(root), trace(other)]);
    cur.push(a);
    base.push(b);
    ratios.push(a / b);
    console.log(
      `  ${interleaved ? 'repetition' : 'pair'} ${p}: working tree ${a.toFixed(2)} us/page, ${rev} ${b.toFixed(2)} us/page, ratio ${(a / b).toFixed(3)}`,
    );
  }
  const faster = ratios.filter((r) => r < 1).length;
  console.log(
    `median: working tree ${median(cur).toFixed(2)} us/page, ${rev} ${median(base).toFixed(2)} us/page; median ratio ${median(ratios).toFixed(3)} (working tree faster in ${faster} of ${pairs}; ratios ${Math.min(...ratios).toFixed(3)} to ${Math.max(...ratios).toFixed(3)})`,
  );
} finally {
  git('worktree', 'remove', '--force', other);
  rmSync(other, { recursive: true, force: true });
}

/** A bench script run under tsx with the bench's node flags; its stdout, once it exits 0. */
function runScript(script, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE, script, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`ab: ${script} exited with ${code}:\n${out}`));
    });
  });
}

/** One model-only run of the conversion trace in `tree`; its us/page. */
async function trace(tree) {
  const out = await runScript(
    join(tree, 'bench', 'conversion-trace.ts'),
    [...traceArgs, '--model-only'],
    tree,
  );
  const m = /model-only: ([\d.]+) us\/page/.exec(out);
  if (!m) throw new Error(`ab: the trace in ${tree} printed no result:\n${out}`);
  return Number(m[1]);
}

/** bench/lib/interleave.ts over trees a and b: [a, b] us/page for each of `reps` repetitions. */
async function interleave(a, b, reps) {
  const pages = traceArgs.find((x) => /^\d+$/.test(x)) ?? '262144';
  const script = join(root, 'bench', 'lib', 'interleave.ts');
  const out = await runScript(script, [a, b, pages, '--reps', String(reps)], root);
  const rows = [...out.matchAll(/^rep \d+: A ([\d.]+) B ([\d.]+)/gm)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
  if (rows.length === 0) throw new Error(`ab: the interleaved trace printed no repetition:\n${out}`);
  return rows;
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
