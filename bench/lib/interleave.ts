/**
 * Two builds of the model on the conversion trace in one process, batch by batch: A's batch, then
 * B's, then B's, then A's, ... (the order flips every batch), each batch timed on its own. Run by
 * `bench/ab.mjs --interleaved`.
 *
 *   node --import tsx --expose-gc --max-semi-space-size=64 bench/lib/interleave.ts <treeA> <treeB> [pages] [--reps N]
 *
 * Why: this machine's speed moves between two levels for seconds at a time, so two runs one after
 * the other, or two processes side by side (which also share the two cores' GC threads), differ by
 * up to ~20% with the same code. A batch of 256 pages takes ~1.5 ms: an A batch and the B batch
 * next to it see the same machine.
 *
 * Both builds live in one heap, so a collection lands in whichever batch happens to trigger it.
 * The main thread's GC pauses (node:perf_hooks 'gc' entries) are therefore taken out of the batch
 * they fell in, and the comparison is of the builds' own work: what a change does to collections
 * shows only as far as it changes that work. The final ordering step is left out for the same
 * reason (it runs one build after the other, and its collections are the biggest).
 *
 * A full collection runs before each repetition, and with it die the hidden classes (maps) of
 * every class whose instances all died: each repetition's first pages then run code the JIT
 * compiles again. A build that keeps an instance of its per-page classes alive at module level
 * skips that, and looks up to ~15-20% faster here (131072 pages; session 16) for a reason no
 * single run shares: check such a change with the pairs.
 *
 * Prints, per repetition, `rep R: A <us/page> B <us/page> ratio <A/B> (GC pauses taken out: A <ms>
 * B <ms>)`. The first repetition includes both builds' compilation by the JIT.
 */
import { join } from 'node:path';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type * as harness from './model-trace.js';
import type { ModelApi, modelTraceSteps } from './model-trace.js';

const args = process.argv.slice(2);
const repsAt = args.indexOf('--reps');
const reps = repsAt < 0 ? 3 : Number(args[repsAt + 1]);
const positional = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--reps');
const [treeA, treeB, pagesArg] = positional;
const pages = Number(pagesArg ?? 1 << 20);
// At least two batches: the last one (with the ordering) is not timed.
if (treeA === undefined || treeB === undefined || !Number.isSafeInteger(pages) || pages <= 256) {
  console.error('usage: interleave.ts <treeA> <treeB> [pages > 256] [--reps N]');
  process.exit(2);
}
if (!Number.isSafeInteger(reps) || reps < 1) {
  console.error(`interleave: --reps wants a positive integer, got ${args[repsAt + 1]}`);
  process.exit(2);
}

/**
 * A build's model, and a copy of the trace harness of its own (a module instance per side, by a
 * query in its URL): one shared copy would see both builds' classes at every property access and
 * call, and run slower than either build's bench does.
 */
const load = async (
  tree: string,
  side: number,
): Promise<{ api: ModelApi; steps: typeof modelTraceSteps }> => ({
  api: (await import(pathToFileURL(join(tree, 'src', 'index.ts')).href)) as ModelApi,
  steps: ((await import(new URL(`./model-trace.ts?side=${side}`, import.meta.url).href)) as typeof harness)
    .modelTraceSteps,
});
const builds = [await load(treeA, 0), await load(treeB, 1)] as const;
const BATCH = 256;
const batches = Math.ceil(pages / BATCH);

for (let rep = 1; rep <= reps; rep++) {
  (globalThis as { gc?: () => void }).gc?.();
  const gcs: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => {
    gcs.push(...list.getEntries());
  });
  obs.observe({ entryTypes: ['gc'] });
  const steps = builds.map((b) => b.steps(b.api, pages, false, pages, BATCH));
  // The batches in the order they ran: start, end and side of each (the last steps, with the
  // ordering, are not timed).
  const starts = new Float64Array(2 * (batches - 1));
  const ends = new Float64Array(2 * (batches - 1));
  const sides = new Uint8Array(2 * (batches - 1));
  let at = 0;
  for (let b = 0; b < batches - 1; b++) {
    for (let k = 0; k < 2; k++) {
      const side = (b + k) & 1;
      starts[at] = performance.now();
      steps[side]!.next();
      ends[at] = performance.now();
      sides[at++] = side;
    }
  }
  for (const [side, s] of steps.entries()) {
    if (s.next().value?.checksum === 0) continue;
    console.error(`interleave: unexpected guest data in ${positional[side]}`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  gcs.push(...obs.takeRecords());
  obs.disconnect();
  const ms = [0, 0];
  for (let i = 0; i < at; i++) ms[sides[i]!]! += ends[i]! - starts[i]!;
  const gcMs = [0, 0];
  for (const e of gcs) {
    // The batch the pause started in (the last batch that started at or before it).
    let lo = 0;
    let hi = at - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= e.startTime) lo = mid;
      else hi = mid - 1;
    }
    if (at === 0 || e.startTime < starts[lo]! || e.startTime >= ends[lo]!) continue;
    gcMs[sides[lo]!]! += e.duration;
  }
  const perPage = (side: number): number => ((ms[side]! - gcMs[side]!) * 1000) / ((batches - 1) * BATCH);
  const [a, b] = [perPage(0), perPage(1)];
  console.log(
    `rep ${rep}: A ${a.toFixed(3)} B ${b.toFixed(3)} ratio ${(a / b).toFixed(4)} (GC pauses taken out: A ${gcMs[0]!.toFixed(0)} ms, B ${gcMs[1]!.toFixed(0)} ms)`,
  );
}
