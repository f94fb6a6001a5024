import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Extent, ExtentMap, PageCells, PointExtentMap } from '../../src/ranges/index.js';

/** Universe of the naive model: pages 0..U-1; queries also probe a little beyond it. */
const U = 200;

type Naive = (number | undefined)[];

/** The two implementations of the contract: the B+-tree, and the tree behind a page layer. */
type AnyMap<T> = ExtentMap<T> | PointExtentMap<T>;

/** Values as stored in the map under test: plain numbers, or boxed with a custom equality. */
interface Mode<T> {
  readonly name: string;
  readonly make: () => AnyMap<T>;
  readonly wrap: (k: number) => T;
  readonly key: (v: T) => number;
  /** After each operation (a shared layer's partner map takes its turn). */
  readonly after?: () => void;
}

const plain: Mode<number> = {
  name: 'numbers, Object.is',
  make: () => new ExtentMap<number>(),
  wrap: (k) => k,
  key: (v) => v,
};

interface Boxed {
  readonly k: number;
  readonly serial: number;
}
let serial = 0;
const boxed: Mode<Boxed> = {
  name: 'objects, custom equality',
  make: () => new ExtentMap<Boxed>((a, b) => a.k === b.k),
  wrap: (k) => ({ k, serial: serial++ }),
  key: (v) => v.k,
};
const pointPlain: Mode<number> = {
  ...plain,
  name: 'PointExtentMap, numbers, Object.is',
  make: () => new PointExtentMap<number>(),
};
const pointBoxed: Mode<Boxed> = {
  ...boxed,
  name: 'PointExtentMap, objects, custom equality',
  make: () => new PointExtentMap<Boxed>((a, b) => a.k === b.k),
};

/**
 * A PointExtentMap in one column of a shared page layer (PageCells) whose other column, a partner
 * map, changes the same pages between the operations under test: one-page sets and clears, range
 * sets (short and long), flushes and clears. The partner is checked against its own naive array
 * as it goes, so neither column may disturb the other.
 */
function sharing<T>(
  base: Mode<T>,
  eq: ((a: T, b: T) => boolean) | undefined,
  partnerFirst: boolean,
): Mode<T> {
  let partner = new PointExtentMap<number>();
  let naive: Naive = [];
  let tick = 0;
  const after = (): void => {
    tick++;
    const p = (tick * 37) % U;
    const v = tick % 4 === 3 ? undefined : tick % 3;
    const kind = tick % 13;
    if (kind === 12) {
      const e = Math.min(U, p + 40); // past SCAN_MAX pages
      partner.set(p, e, v);
      naive.fill(v, p, e);
    } else if (kind === 11) {
      partner.set(p, Math.min(U, p + 3), v);
      naive.fill(v, p, Math.min(U, p + 3));
    } else if (kind === 10) expect(partner.size).toBe(naiveExtents(naive).length);
    else if (kind === 9 && tick % 3 === 0) {
      partner.clear();
      naive.fill(undefined);
    } else {
      // Two pages a turn, so that the partner holds overrides on many of the pages under test.
      const q = (tick * 91 + 5) % U;
      partner.set(p, p + 1, v);
      partner.set(q, q + 1, tick % 5 === 4 ? undefined : tick % 3);
      naive[p] = v;
      naive[q] = tick % 5 === 4 ? undefined : tick % 3;
    }
    if (tick % 4 === 0) for (let i = 0; i < U; i++) expect(partner.get(i)).toBe(naive[i]);
  };
  return {
    ...base,
    name: `PointExtentMap in the ${partnerFirst ? 'second' : 'first'} column of a shared layer, ${base.name}`,
    make: () => {
      const cells = new PageCells();
      naive = new Array<number | undefined>(U).fill(undefined);
      if (partnerFirst) partner = new PointExtentMap<number>(undefined, cells);
      const m = new PointExtentMap<T>(eq, cells);
      if (!partnerFirst) partner = new PointExtentMap<number>(undefined, cells);
      return m;
    },
    after,
  };
}
const sharedPlain = sharing(plain, undefined, false);
const sharedBoxed = sharing(boxed, (a, b) => a.k === b.k, true);

/** Maximal runs of equal defined values in a naive array, as extents of keys. */
function naiveExtents(a: Naive, lo = 0, hi = a.length): Extent<number>[] {
  const out: Extent<number>[] = [];
  let i = Math.max(0, lo);
  const end = Math.min(a.length, hi);
  while (i < end) {
    const v = a[i];
    let j = i + 1;
    while (j < end && a[j] === v) j++;
    if (v !== undefined) out.push({ start: i, end: j, value: v });
    i = j;
  }
  return out;
}

function naiveSegments(a: Naive, lo: number, hi: number): Extent<number | undefined>[] {
  const out: Extent<number | undefined>[] = [];
  let i = lo;
  while (i < hi) {
    const v = i < a.length ? a[i] : undefined;
    let j = i + 1;
    while (j < hi && (j < a.length ? a[j] : undefined) === v) j++;
    out.push({ start: i, end: j, value: v });
    i = j;
  }
  return out;
}

type Fn = 'const' | 'inc' | 'drop' | 'ident' | 'fill' | 'byStart';
const fns: readonly Fn[] = ['const', 'inc', 'drop', 'ident', 'fill', 'byStart'];

/** The update callbacks, on keys; `c` parameterises them. */
function applyFn(fn: Fn, c: number, v: number | undefined, start: number): number | undefined {
  switch (fn) {
    case 'const':
      return c === 3 ? undefined : c;
    case 'inc':
      return v === undefined ? undefined : (v + 1) % 3;
    case 'drop':
      return v === c ? undefined : v;
    case 'ident':
      return v;
    case 'fill':
      return v === undefined ? c % 3 : v;
    case 'byStart':
      return (start + c) % 3;
  }
}

type Op =
  | { kind: 'set'; m: number; s: number; e: number; v: number | undefined }
  | { kind: 'update'; m: number; s: number; e: number; fn: Fn; c: number }
  | { kind: 'pages'; m: number; pages: [number, number | undefined][] }
  | { kind: 'clone'; m: number }
  | { kind: 'clear'; m: number }
  | { kind: 'check'; m: number; a: number; b: number };

const idx = fc.integer({ min: 0, max: 1000 });
const page = fc.integer({ min: 0, max: U });
const val = fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant('set' as const), m: idx, s: page, e: page, v: val }),
  },
  // Short ranges too, so that sets land inside existing extents (splits in the middle).
  {
    weight: 4,
    arbitrary: fc
      .record({ m: idx, s: page, len: fc.integer({ min: 0, max: 6 }), v: val })
      .map(({ m, s, len, v }): Op => ({ kind: 'set', m, s, e: Math.min(U, s + len), v })),
  },
  // One page: the page layer's path (and the B+-tree's in-leaf edit).
  {
    weight: 6,
    arbitrary: fc
      .record({ m: idx, s: fc.integer({ min: 0, max: U - 1 }), v: val })
      .map(({ m, s, v }): Op => ({ kind: 'set', m, s, e: s + 1, v })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        m: idx,
        s: fc.integer({ min: 0, max: U - 1 }),
        fn: fc.constantFrom(...fns),
        c: fc.integer({ min: 0, max: 3 }),
      })
      .map(({ m, s, fn, c }): Op => ({ kind: 'update', m, s, e: s + 1, fn, c })),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      m: idx,
      s: page,
      e: page,
      fn: fc.constantFrom(...fns),
      c: fc.integer({ min: 0, max: 3 }),
    }),
  },
  // A batch of one-page sets, in page order: ExtentMap.setPages (from 64 pages on, a merge and a
  // rebuild), and on a PointExtentMap a layer that big, flushed the same way.
  {
    weight: 2,
    arbitrary: fc
      .record({
        m: idx,
        pages: fc.oneof(
          fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: U - 1 }), val), { selector: ([p]) => p }),
          fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: U - 1 }), val), {
            minLength: 64,
            maxLength: 180,
            selector: ([p]) => p,
          }),
        ),
      })
      .map(({ m, pages }): Op => ({ kind: 'pages', m, pages: pages.sort((x, y) => x[0] - y[0]) })),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clone' as const), m: idx }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), m: idx }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('check' as const), m: idx, a: page, b: page }) },
);

function keys<T>(mode: Mode<T>, xs: Iterable<Extent<T>>): Extent<number>[] {
  return [...xs].map((x) => ({ start: x.start, end: x.end, value: mode.key(x.value) }));
}

/** Compares everything observable about `map` with the naive array; [a, b) is a probe range. */
function compare<T>(mode: Mode<T>, map: AnyMap<T>, naive: Naive, a: number, b: number): void {
  const key = (v: T | undefined): number | undefined => (v === undefined ? undefined : mode.key(v));
  const all = naiveExtents(naive);
  // Gets and one-page predicates first: on a PointExtentMap they read the page layer, which any
  // ordered query below flushes into the tree.
  const gets: (number | undefined)[] = [];
  for (let i = 0; i < U + 3; i++) gets.push(key(map.get(i)));
  for (const i of [a, b])
    if (i < U) expect(map.every(i, i + 1, (v) => v !== undefined)).toBe(naive[i] !== undefined);
  if (map instanceof PointExtentMap && all.length > 0) expect(map.isEmpty()).toBe(false);
  map.validate();
  const ats: (Extent<number> | undefined)[] = [];
  const wantAts: (Extent<number> | undefined)[] = [];
  for (let i = 0; i < U + 3; i++) {
    const got = map.extentAt(i);
    ats.push(got && { start: got.start, end: got.end, value: mode.key(got.value) });
    wantAts.push(all.find((x) => x.start <= i && i < x.end));
  }
  expect(gets).toEqual([...naive, undefined, undefined, undefined]);
  expect(ats).toEqual(wantAts);
  expect(map.size).toBe(all.length);
  expect(keys(mode, map.entries())).toEqual(all);
  const [lo, hi] = a <= b ? [a, b] : [b, a + 3];
  expect(keys(mode, map.entries(lo, hi))).toEqual(naiveExtents(naive, lo, hi));
  expect([...map.segments(lo, hi)].map((x) => ({ start: x.start, end: x.end, value: key(x.value) }))).toEqual(
    naiveSegments(naive, lo, hi),
  );
  for (const i of [lo, hi, a, b, 0, U]) {
    const next = all.find((x) => x.end > i);
    const got = map.nextExtent(i);
    expect(got && { start: got.start, end: got.end, value: mode.key(got.value) }).toEqual(next);
  }
  const slice = naiveSegments(naive, lo, hi);
  for (const k of [0, 1, 2]) {
    const is = (v: T): boolean => mode.key(v) === k;
    expect(map.some(lo, hi, is)).toBe(slice.some((x) => x.value === k));
    expect(map.count(lo, hi, is)).toBe(
      slice.filter((x) => x.value === k).reduce((n, x) => n + x.end - x.start, 0),
    );
    const isOrGap = (v: T | undefined): boolean => v === undefined || mode.key(v) === k;
    expect(map.every(lo, hi, isOrGap)).toBe(slice.every((x) => x.value === undefined || x.value === k));
  }
  expect(map.count(lo, hi)).toBe(
    slice.filter((x) => x.value !== undefined).reduce((n, x) => n + x.end - x.start, 0),
  );
  expect(map.every(lo, hi, (v) => v !== undefined)).toBe(slice.every((x) => x.value !== undefined));
}

function run<T>(mode: Mode<T>, ops: Op[]): void {
  const maps: AnyMap<T>[] = [mode.make()];
  const naives: Naive[] = [new Array<number | undefined>(U).fill(undefined)];
  for (const op of ops) {
    const m = op.m % maps.length;
    const map = maps[m]!;
    const naive = naives[m]!;
    switch (op.kind) {
      case 'set':
        map.set(op.s, op.e, op.v === undefined ? undefined : mode.wrap(op.v));
        for (let i = op.s; i < op.e; i++) naive[i] = op.v;
        break;
      case 'update': {
        const calls: Extent<number | undefined>[] = [];
        map.update(op.s, op.e, (v, start, end) => {
          const k = v === undefined ? undefined : mode.key(v);
          calls.push({ start, end, value: k });
          const r = applyFn(op.fn, op.c, k, start);
          return r === undefined ? undefined : mode.wrap(r);
        });
        const expected = op.s < op.e ? naiveSegments(naive, op.s, op.e) : [];
        expect(calls).toEqual(expected);
        for (const seg of expected) {
          const r = applyFn(op.fn, op.c, seg.value, seg.start);
          for (let i = seg.start; i < seg.end; i++) naive[i] = r;
        }
        break;
      }
      case 'pages': {
        const vals = op.pages.map(([, v]) => (v === undefined ? undefined : mode.wrap(v)));
        if (map instanceof ExtentMap)
          map.setPages(
            op.pages.map(([p]) => p),
            vals,
            op.pages.length,
          );
        else
          op.pages.forEach(([p], i) => {
            map.set(p, p + 1, vals[i]);
          });
        for (const [p, v] of op.pages) naive[p] = v;
        break;
      }
      case 'clone':
        maps.push(map.clone());
        naives.push([...naive]);
        break;
      case 'clear':
        map.clear();
        naive.fill(undefined);
        break;
      case 'check':
        compare(mode, map, naive, op.a, op.b);
        break;
    }
    mode.after?.();
  }
  // Every clone still matches its own history: mutations never leaked across clones.
  maps.forEach((map, i) => {
    compare(mode, map, naives[i]!, 10, 90);
  });
}

describe('ExtentMap against a per-page model', () => {
  for (const mode of [plain, boxed, pointPlain, pointBoxed, sharedPlain, sharedBoxed] as const) {
    it(`random set/update/clone/clear sequences (${mode.name})`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
          run<unknown>(mode as Mode<unknown>, ops);
        }),
        { numRuns: 1000 },
      );
    });
  }

  it('contents are history-independent (the B+-tree shape need not be), and every history validates', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(page, page, val), { maxLength: 60 }),
        fc.array(fc.tuple(page, page, val), { maxLength: 60 }),
        (noise, ops) => {
          const a = new ExtentMap<number>();
          const b = new ExtentMap<number>();
          for (const [s, e, v] of noise) b.set(s, e, v);
          b.clear();
          b.set(0, U, 7);
          for (const [s, e, v] of ops) {
            a.set(s, e, v);
            b.set(s, e, v);
          }
          // Bring both to the same contents by different routes.
          b.update(0, U, (v) => (v === 7 ? undefined : v));
          a.update(0, U, (v) => (v === 7 ? undefined : v));
          expect([...b.entries()]).toEqual([...a.entries()]);
          expect(b.size).toBe(a.size);
          a.validate();
          b.validate();
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('ExtentMap examples', () => {
  it('merges equal neighbours, including across a filled hole', () => {
    const m = new ExtentMap<string>();
    m.set(0, 10, 'a');
    m.set(20, 30, 'a');
    expect(m.size).toBe(2);
    m.set(10, 20, 'a');
    expect(m.size).toBe(1);
    expect(m.extentAt(15)).toEqual({ start: 0, end: 30, value: 'a' });
    m.set(30, 40, 'a');
    expect([...m.entries()]).toEqual([{ start: 0, end: 40, value: 'a' }]);
    m.set(5, 35, 'a'); // already so: nothing changes
    expect(m.size).toBe(1);
  });

  it('splits an extent in the middle and heals it again', () => {
    const m = new ExtentMap<string>();
    m.set(0, 100, 'a');
    m.set(40, 60, 'b');
    expect([...m.entries()]).toEqual([
      { start: 0, end: 40, value: 'a' },
      { start: 40, end: 60, value: 'b' },
      { start: 60, end: 100, value: 'a' },
    ]);
    m.set(40, 60, 'a');
    expect(m.size).toBe(1);
    m.set(40, 60, undefined);
    expect(m.size).toBe(2);
    expect(m.get(50)).toBeUndefined();
    expect(m.count(0, 100)).toBe(80);
    expect([...m.segments(30, 70)]).toEqual([
      { start: 30, end: 40, value: 'a' },
      { start: 40, end: 60, value: undefined },
      { start: 60, end: 70, value: 'a' },
    ]);
    expect(m.nextExtent(45)).toEqual({ start: 60, end: 100, value: 'a' });
    expect(m.nextExtent(100)).toBeUndefined();
  });

  it('handles indices near 2^40 and 2^52 without touching per-page memory', () => {
    const m = new ExtentMap<string>();
    const t = 2 ** 40;
    const top = 2 ** 52;
    m.set(t - 5, t + 5, 'x');
    m.set(top - 1, top, 'y');
    m.set(t, t + 1, 'z');
    expect(m.get(t - 5)).toBe('x');
    expect(m.get(t)).toBe('z');
    expect(m.get(t + 4)).toBe('x');
    expect(m.get(t + 5)).toBeUndefined();
    expect(m.extentAt(t + 2)).toEqual({ start: t + 1, end: t + 5, value: 'x' });
    expect(m.nextExtent(0)).toEqual({ start: t - 5, end: t, value: 'x' });
    expect(m.nextExtent(t + 5)).toEqual({ start: top - 1, end: top, value: 'y' });
    expect(m.count(0, top)).toBe(11);
    expect(m.size).toBe(4);
    // A 4 TiB guest (2^30 pages) in one extent, then punched: cost follows extents, not pages.
    const g = new ExtentMap<string>();
    g.set(0, 2 ** 30, 'shared');
    for (let i = 0; i < 1000; i++) g.set(i * 2 ** 20, i * 2 ** 20 + 1, 'private');
    expect(g.size).toBe(2000);
    expect(g.count(0, 2 ** 30, (v) => v === 'private')).toBe(1000);
    expect(g.every(0, 2 ** 30, (v) => v !== undefined)).toBe(true);
    m.validate();
    g.validate();
  });

  it('rejects non-integer and negative ranges, ignores empty ones', () => {
    const m = new ExtentMap<number>();
    expect(() => m.set(-1, 2, 1)).toThrow(RangeError);
    expect(() => m.set(0.5, 2, 1)).toThrow(RangeError);
    expect(() => m.update(0, Number.NaN, () => 1)).toThrow(RangeError);
    m.set(5, 3, 1);
    m.set(4, 4, 1);
    expect(m.size).toBe(0);
  });

  it('clone is O(1) and both sides stay independent', () => {
    const m = new ExtentMap<number>();
    for (let i = 0; i < 100_000; i++) m.set(i * 4, i * 4 + 2, i % 3);
    const t0 = performance.now();
    const clones: ExtentMap<number>[] = [];
    for (let i = 0; i < 10_000; i++) clones.push(m.clone());
    // 10^4 copies of 10^5 nodes would be 10^9 node copies; sharing makes it near-instant.
    expect(performance.now() - t0).toBeLessThan(1000);
    const c = clones[5_000]!;
    c.set(0, 400_000, 9);
    m.set(2, 6, 0); // fills the gap and overwrites [4, 6): [0, 6) becomes one extent
    expect(c.size).toBe(1);
    expect(m.size).toBe(100_000 - 1);
    expect(clones[0]!.get(2)).toBeUndefined();
    expect(clones[0]!.size).toBe(100_000);
    expect(m.get(2)).toBe(0);
    expect(c.get(2)).toBe(9);
    m.clear();
    expect(clones[1]!.size).toBe(100_000);
    clones[1]!.validate();
  });

  it('iterators see a snapshot even if the loop mutates the map', () => {
    const m = new ExtentMap<number>();
    m.set(0, 10, 1);
    m.set(20, 30, 2);
    m.set(40, 50, 3);
    const seen: Extent<number>[] = [];
    for (const e of m.entries()) {
      seen.push(e);
      m.set(e.start, e.end + 20, e.value + 10);
    }
    expect(seen.map((e) => e.value)).toEqual([1, 2, 3]);
    expect([...m.entries()].map((e) => e.value)).toEqual([11, 12, 13]);
    m.validate();
  });

  it('iterators are unaffected by heavy restructuring of the map mid-iteration', () => {
    const build = (): ExtentMap<number> => {
      const m = new ExtentMap<number>();
      for (let i = 0; i < 1000; i++) m.set(i * 4, i * 4 + 2, i % 3);
      return m;
    };
    const churn = (m: ExtentMap<number>, start: number, end: number): void => {
      // In-place edits of nodes the iterator has yet to visit: cuts, merges, clears, updates.
      for (let j = 1; j < 6; j++) m.set(end + j * 7, end + j * 7 + 5, (start + j) % 3);
      m.set(end + 50, end + 90, undefined);
      m.update(end + 100, end + 120, (v) => (v === undefined ? 7 : v + 1));
    };
    const m = build();
    const before = [...m.entries()];
    const seen: Extent<number>[] = [];
    for (const e of m.entries()) {
      seen.push(e);
      churn(m, e.start, e.end);
    }
    expect(seen).toEqual(before);
    m.validate();

    const n = build();
    const segs = [...n.segments(0, 4000)];
    const seenSegs: Extent<number | undefined>[] = [];
    for (const e of n.segments(0, 4000)) {
      seenSegs.push(e);
      churn(n, e.start, e.end);
    }
    expect(seenSegs).toEqual(segs);
    n.validate();
  });

  it('update visits gaps, clips to the range, and leaves the map alone when nothing changes', () => {
    const m = new ExtentMap<string>();
    m.set(0, 10, 'a');
    m.set(20, 30, 'b');
    const calls: [string | undefined, number, number][] = [];
    m.update(5, 25, (v, s, e) => {
      calls.push([v, s, e]);
      return v;
    });
    expect(calls).toEqual([
      ['a', 5, 10],
      [undefined, 10, 20],
      ['b', 20, 25],
    ]);
    m.update(5, 25, (v) => (v === undefined ? 'a' : v));
    expect([...m.entries()]).toEqual([
      { start: 0, end: 20, value: 'a' },
      { start: 20, end: 30, value: 'b' },
    ]);
    m.update(0, 30, () => undefined);
    expect(m.size).toBe(0);
  });

  it('stays shallow under sequential inserts (no degenerate spine)', () => {
    const m = new ExtentMap<number>();
    for (let i = 0; i < 100_000; i++) m.set(i, i + 1, i & 1);
    expect(m.size).toBe(100_000);
    // 100k extents: at most 64 per leaf and 64 children per branch, at least 16 (root aside).
    expect(m.validate()).toBeGreaterThanOrEqual(3);
    expect(m.validate()).toBeLessThanOrEqual(4);
  });
});

describe('ExtentMap.setPages (a sorted run of one-page sets)', () => {
  /** Pages 3i + (i & 1) for i < n: scattered, with gaps of 2 and 3 pages. */
  const scattered = (n: number): number[] => Array.from({ length: n }, (_, i) => 3 * i + (i & 1));

  it('a run far larger than the map builds a tree of several levels, as page-by-page sets would', () => {
    const pages = scattered(300_000);
    const vals = pages.map((p) => p % 5);
    const bulk = new ExtentMap<number>();
    bulk.set(1000, 500_000, 9); // one extent the run splits into ~165k pieces
    bulk.setPages(pages, vals, pages.length);
    // The expected extents, worked out by hand: each page its own extent (neighbours are 2 or 3
    // pages apart, or touch only inside the 9-range where the pieces of 9 sit between them).
    const want: Extent<number>[] = [];
    let at = 1000;
    for (const p of pages) {
      if (p >= 1000 && p < 500_000 && p > at) want.push({ start: at, end: p, value: 9 });
      want.push({ start: p, end: p + 1, value: p % 5 });
      if (p >= 1000 && p < 500_000) at = p + 1;
    }
    if (at < 500_000) want.push({ start: at, end: 500_000, value: 9 });
    want.sort((a, b) => a.start - b.start);
    expect([...bulk.entries()]).toEqual(want);
    expect(bulk.size).toBe(want.length);
    // 465k extents: leaves of 64 under three branch levels, every node legally filled.
    expect(bulk.validate()).toBe(4);
  });

  it('merges pages with equal neighbours and clears pages given undefined', () => {
    const m = new ExtentMap<string>();
    m.set(0, 100, 'a');
    const pages = Array.from({ length: 100 }, (_, i) => 100 + i); // 100..199 appended
    const vals = pages.map((p) => (p < 150 ? 'a' : p === 170 ? undefined : 'b'));
    m.setPages(pages, vals, pages.length);
    expect([...m.entries()]).toEqual([
      { start: 0, end: 150, value: 'a' },
      { start: 150, end: 170, value: 'b' },
      { start: 171, end: 200, value: 'b' },
    ]);
    const clears = Array.from({ length: 200 }, (_, i) => i);
    m.setPages(clears, new Array<string | undefined>(200).fill(undefined), 200);
    expect(m.size).toBe(0);
    expect(m.validate()).toBe(0);
  });

  it('iterators keep their snapshot and clones stay independent across a rebuild', () => {
    const m = new ExtentMap<number>();
    for (let i = 0; i < 1000; i += 2) m.set(i, i + 1, 1);
    const c = m.clone();
    const it = m.entries();
    const first = it.next().value;
    const pages = Array.from({ length: 1000 }, (_, i) => i);
    m.setPages(pages, new Array<number>(1000).fill(2), 1000);
    expect(first).toEqual({ start: 0, end: 1, value: 1 });
    expect([...it]).toHaveLength(499); // the rest of the old extents
    expect([...m.entries()]).toEqual([{ start: 0, end: 1000, value: 2 }]);
    expect(c.size).toBe(500);
    m.set(10, 20, 3); // the rebuilt nodes are the map's own: edited in place, the clone untouched
    c.validate();
    expect(c.get(10)).toBe(1);
    expect(m.get(10)).toBe(3);
  });

  /** The leaf nodes of a map's tree (internals: node sharing is not observable through the API). */
  const leafNodes = (m: ExtentMap<number>): Set<unknown> => {
    const out = new Set<unknown>();
    const walk = (node: { n: number; kids?: unknown[] }, h: number): void => {
      if (h === 0) out.add(node);
      else for (let i = 0; i < node.n; i++) walk(node.kids![i] as { n: number; kids?: unknown[] }, h - 1);
    };
    const t = m as unknown as { root: { n: number } | null; height: number };
    if (t.root) walk(t.root, t.height);
    return out;
  };

  it('a map sharing nodes with a clone keeps sharing them: a large run goes page by page, copying only what it touches', () => {
    const m = new ExtentMap<number>();
    const base = scattered(20_000);
    m.setPages(
      base,
      base.map(() => 1),
      base.length,
    );
    const c = m.clone();
    const run = Array.from({ length: 3000 }, (_, i) => 3 * i + 1); // the first ~140 leaves' worth
    m.setPages(run, new Array<number>(run.length).fill(2), run.length);
    const mine = leafNodes(m);
    const theirs = leafNodes(c);
    const shared = [...theirs].filter((l) => mine.has(l)).length;
    expect(shared).toBeGreaterThan(theirs.size * 0.5);
    expect(c.get(1)).toBeUndefined();
    expect(m.get(1)).toBe(2);
    m.validate();
    c.validate();
  });

  it('a run that changes nothing leaves the tree as it is (no rebuild)', () => {
    const m = new ExtentMap<number>();
    const pages = scattered(10_000);
    m.setPages(
      pages,
      pages.map(() => 4),
      pages.length,
    );
    const before = leafNodes(m);
    // Values already there, and clears of gaps.
    m.setPages(
      pages,
      pages.map(() => 4),
      pages.length,
    );
    const gaps = pages.map((p) => p + 1);
    m.setPages(gaps, new Array<number | undefined>(gaps.length).fill(undefined), gaps.length);
    const after = [...leafNodes(m)];
    expect(after.length).toBe(before.size);
    expect(after.every((l) => before.has(l))).toBe(true); // the same node objects
    expect(m.size).toBe(10_000);
  });

  it('refuses a bad count (not a safe integer, negative, beyond the keys or values) with RangeError', () => {
    const m = new ExtentMap<number>();
    m.set(0, 10, 1);
    const keys = Array.from({ length: 100 }, (_, i) => 20 + i);
    const vals = new Array<number>(100).fill(2);
    for (const n of [Number.NaN, 1.5, -1, 101]) {
      expect(() => m.setPages(keys, vals, n)).toThrow(RangeError);
    }
    expect(() => m.setPages(keys, vals.slice(0, 99), 100)).toThrow(RangeError);
    expect([...m.entries()]).toEqual([{ start: 0, end: 10, value: 1 }]);
  });

  it('refuses unordered, repeated and bad pages with RangeError and leaves the map as it was', () => {
    for (const n of [3, 100]) {
      const m = new ExtentMap<number>();
      m.set(0, 10, 1);
      const ok = Array.from({ length: n }, (_, i) => 20 + i);
      for (const bad of [
        [...ok.slice(0, -1), 5], // below its predecessor
        [...ok.slice(0, -1), ok[n - 2]!], // repeated
        [-1, ...ok.slice(1)],
        [...ok.slice(0, -1), 1.5 + 2 * n],
        [...ok.slice(0, -1), Number.MAX_SAFE_INTEGER],
      ]) {
        expect(() => m.setPages(bad, new Array<number>(n).fill(2), n)).toThrow(RangeError);
        expect([...m.entries()]).toEqual([{ start: 0, end: 10, value: 1 }]);
      }
    }
  });
});
