/**
 * How fast the machine ran during a benchmark run, measured from inside it.
 *
 * Why: on the shared benchmark machines one core's speed swings for seconds at a time, with no
 * steal time reported. Session 15 timed the conversion trace in 64K-page stretches: they ran at
 * ~4 or at ~7-8 us/page, and an integer loop timed between the stretches was up to 1.7x slower in
 * the slow ones; a pointer chase (through 32 MiB there) followed the trace's speed more closely
 * (correlation 0.57 against 0.33 over 64 stretches). A run's rate alone cannot tell a slower model
 * from a slower machine.
 *
 * A probe is an integer loop (no memory traffic) then a pointer chase through 8 MiB (beyond the
 * per-core L2, inside the shared L3: other tenants' traffic slows it), ~3-4 ms together at full
 * speed. A run takes a probe every so often and excludes the probe's time from its own; its speed
 * is the fastest probe of the process divided by the run's median probe (1: at its best).
 */

/** Iterations of the integer loop. */
const ALU_ITERATIONS = 3_000_000;
/** Entries of the pointer-chase table (4 bytes each), and steps per probe. */
const CHASE_ENTRIES = 1 << 21;
const CHASE_STEPS = 20_000;

/** One random cycle through all entries (Sattolo's shuffle, fixed seed): each step a cache miss in L2. */
function chaseTable(): Int32Array {
  const next = new Int32Array(CHASE_ENTRIES);
  for (let i = 0; i < CHASE_ENTRIES; i++) next[i] = i;
  let seed = 12345;
  for (let i = CHASE_ENTRIES - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % i;
    const t = next[i]!;
    next[i] = next[j]!;
    next[j] = t;
  }
  return next;
}

/**
 * Probes, one per next(): each its duration in ms. A generator because TurboFan never inlines one:
 * the loops are compiled once, on their own. An inlined probe took the code and register allocation
 * of its caller, and ran ~1.4x slower inside the baseline's loop than inside the model's.
 */
function* probes(next: Int32Array): Generator<number, never, undefined> {
  let p = 0;
  for (;;) {
    const t0 = performance.now();
    let x = 0;
    for (let i = 0; i < ALU_ITERATIONS; i++) x = (x + Math.imul(i, 0x9e3779b1)) | 0;
    for (let i = 0; i < CHASE_STEPS; i++) p = next[p]!;
    const ms = performance.now() - t0;
    // Keeps the loops from being optimized away (x is never this, p never negative).
    if (x === 0.5 || p < 0) throw new Error('cpu-probe: impossible');
    yield ms;
  }
}

export class CpuProbe {
  private readonly gen: Generator<number, never, undefined>;
  /** The fastest probe so far in this process. */
  private best = Number.POSITIVE_INFINITY;
  /** Probes of the run under way (since begin()). */
  private run: number[] = [];
  /** ms spent in probes since begin(), to be taken off the run's time. */
  spentMs = 0;

  /** Builds the chase table, warms the loops up (optimized code) and sets a first best. */
  constructor(warmup = 100) {
    this.gen = probes(chaseTable());
    for (let i = 0; i < warmup; i++) this.best = Math.min(this.best, this.gen.next().value);
  }

  begin(): void {
    this.run = [];
    this.spentMs = 0;
  }

  /** Takes one probe inside the run. */
  sample(): void {
    const t0 = performance.now();
    const ms = this.gen.next().value;
    this.run.push(ms);
    this.best = Math.min(this.best, ms);
    this.spentMs += performance.now() - t0;
  }

  /** Ends the run: its median probe in ms (NaN if it took none). */
  end(): number {
    const s = [...this.run].sort((a, b) => a - b);
    if (s.length === 0) return Number.NaN;
    const h = s.length >> 1;
    return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
  }

  /** A run's speed from its median probe: the fastest probe so far over it, in (0, 1]. */
  speed(medianMs: number): number {
    return this.best / medianMs;
  }
}
