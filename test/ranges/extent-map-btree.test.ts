/**
 * The B+-tree behind ExtentMap at sizes where it has several levels: leaves hold 16..64 extents and
 * branches 16..64 children, so a few thousand extents give three levels and a few hundred
 * thousand four. Every test drives the map against a per-page array (0 = gap) with a fixed-seed
 * generator, so node splits, joins and re-deals happen at leaf and branch boundaries all over the
 * tree, and checks validate() (fill, separators, depth, merging, size) along the way.
 */
import { describe, expect, it } from 'vitest';
import { ExtentMap } from '../../src/ranges/index.js';

/** Fixed-seed xorshift32 in [0, 1). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** Per-page model: 0 is a gap, 1..127 a value. */
class Pages {
  constructor(readonly a: Int8Array) {}
  static of(n: number): Pages {
    return new Pages(new Int8Array(n));
  }
  copy(): Pages {
    return new Pages(this.a.slice());
  }
  set(s: number, e: number, v: number | undefined): void {
    this.a.fill(v ?? 0, s, e);
  }
  /** Maximal runs, as [start, end, value]. */
  runs(): [number, number, number][] {
    const out: [number, number, number][] = [];
    const a = this.a;
    let i = 0;
    while (i < a.length) {
      let j = i + 1;
      while (j < a.length && a[j] === a[i]) j++;
      if (a[i] !== 0) out.push([i, j, a[i]!]);
      i = j;
    }
    return out;
  }
}

/** Everything observable agrees with the model (entries, size, spot gets, extentAt, nextExtent). */
function same(map: ExtentMap<number>, pages: Pages, r: () => number): void {
  map.validate();
  const runs = pages.runs();
  const got = [...map.entries()].map((x): [number, number, number] => [x.start, x.end, x.value]);
  expect(got.length).toBe(runs.length);
  expect(got).toEqual(runs);
  expect(map.size).toBe(runs.length);
  const n = pages.a.length;
  for (let k = 0; k < 200; k++) {
    const i = Math.floor(r() * n);
    const want = pages.a[i] === 0 ? undefined : pages.a[i];
    expect(map.get(i)).toBe(want);
  }
  for (let k = 0; k < 50; k++) {
    const i = Math.floor(r() * n);
    const next = runs.find((x) => x[1] > i);
    const e = map.nextExtent(i);
    expect(e && [e.start, e.end, e.value]).toEqual(next);
    const at = map.extentAt(i);
    const holding = next !== undefined && next[0] <= i ? next : undefined;
    expect(at && [at.start, at.end, at.value]).toEqual(holding);
  }
}

/** One random operation of a mix: mostly short sets, some wide sets/clears/updates. */
function randomOp(map: ExtentMap<number>, pages: Pages, r: () => number, wide: number): void {
  const n = pages.a.length;
  const x = r();
  const s = Math.floor(r() * n);
  if (x < 0.6) {
    const e = Math.min(n, s + 1 + Math.floor(r() * 4));
    const v = 1 + Math.floor(r() * 4);
    map.set(s, e, v);
    pages.set(s, e, v);
  } else if (x < 0.75) {
    const e = Math.min(n, s + 1 + Math.floor(r() * 4));
    map.set(s, e, undefined);
    pages.set(s, e, undefined);
  } else if (x < 0.85) {
    // Wide: removes many extents, whole leaves and subtrees, at random boundaries.
    const e = Math.min(n, s + 1 + Math.floor(r() * wide));
    const v = r() < 0.5 ? undefined : 1 + Math.floor(r() * 4);
    map.set(s, e, v);
    pages.set(s, e, v);
  } else {
    const e = Math.min(n, s + 1 + Math.floor(r() * wide));
    const c = Math.floor(r() * 3);
    const fn = (v: number | undefined, a: number): number | undefined =>
      c === 0
        ? v === undefined
          ? undefined
          : (v % 4) + 1
        : c === 1
          ? v === 2
            ? undefined
            : v
          : 1 + (a % 3);
    map.update(s, e, fn);
    for (let i = s; i < e; ) {
      // Per sub-range, as update() calls fn: a run of equal pages is one sub-range.
      let j = i + 1;
      while (j < e && pages.a[j] === pages.a[i]) j++;
      const old = pages.a[i] === 0 ? undefined : pages.a[i]!;
      pages.set(i, j, fn(old, i));
      i = j;
    }
  }
}

describe('ExtentMap B+-tree at several levels', () => {
  it('random sets, clears and updates over 3-level trees match a per-page model', () => {
    const r = rng(1);
    const n = 200_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    // Fragment first (three levels), then mix in the wide operations.
    for (let k = 0; k < 20_000; k++) {
      const s = Math.floor(r() * (n - 3));
      const v = 1 + Math.floor(r() * 4);
      map.set(s, s + 3, v);
      pages.set(s, s + 3, v);
    }
    let maxLevels = map.validate();
    same(map, pages, r);
    for (let round = 0; round < 12; round++) {
      for (let k = 0; k < 4000; k++) randomOp(map, pages, r, round % 3 === 2 ? 50_000 : 5000);
      maxLevels = Math.max(maxLevels, map.validate());
      same(map, pages, r);
    }
    expect(maxLevels).toBeGreaterThanOrEqual(3);
  });

  it('a 4-level tree survives wide clears and updates at random boundaries', () => {
    const r = rng(2);
    const n = 1_200_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    // 400k extents with gaps between, appended in order: four levels.
    for (let i = 0; i + 2 <= n; i += 3) {
      map.set(i, i + 2, 1 + (i % 4));
      pages.set(i, i + 2, 1 + (i % 4));
    }
    expect(map.validate()).toBe(4);
    same(map, pages, r);
    for (let round = 0; round < 6; round++) {
      for (let k = 0; k < 300; k++) randomOp(map, pages, r, 100_000);
      map.validate();
    }
    same(map, pages, r);
  });

  it('shrinks back level by level as extents go, down to an empty map', () => {
    const r = rng(3);
    const n = 200_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    for (let i = 0; i < n; i += 3) {
      map.set(i, i + 1, 1 + (i % 2));
      pages.set(i, i + 1, 1 + (i % 2));
    }
    let levels = map.validate();
    expect(levels).toBe(3);
    while (map.size > 0) {
      const s = Math.floor(r() * n);
      const e = Math.min(n, s + 1 + Math.floor(r() * 9000));
      map.set(s, e, undefined);
      pages.set(s, e, undefined);
      const now = map.validate();
      expect(now).toBeLessThanOrEqual(levels);
      levels = now;
      // Two leaves hold at least 2 * 16 extents: fewer fit in one leaf, and must.
      if (map.size > 0 && map.size < 32) expect(now).toBe(1);
      if (map.size < 2000 && r() < 0.05) same(map, pages, r);
      // Mostly clear the rest from the edges once small, so the loop ends quickly.
      if (map.size < 50) {
        map.set(0, n, undefined);
        pages.set(0, n, undefined);
      }
    }
    expect(map.validate()).toBe(0);
    same(map, pages, r);
  });

  it('one update() that creates or merges tens of thousands of extents at once', () => {
    const r = rng(4);
    const n = 150_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    map.set(0, n, 1);
    pages.set(0, n, 1);
    // A single sub-range (one extent) cannot split; start from alternating extents instead.
    for (let i = 0; i < n; i += 2) {
      map.set(i, i + 1, 2);
      pages.set(i, i + 1, 2);
    }
    expect(map.size).toBe(n);
    // Every sub-range gets a value of its own: n extents replaced by n new ones in one pass.
    const fn = (_v: number | undefined, s: number): number => 1 + (s % 5);
    map.update(10, n - 10, fn);
    for (let i = 10; i < n - 10; i++) pages.set(i, i + 1, fn(undefined, i));
    same(map, pages, r);
    // Then everything merges into one extent, in one pass again.
    map.update(0, n, () => 3);
    pages.set(0, n, 3);
    same(map, pages, r);
    expect(map.size).toBe(1);
    expect(map.validate()).toBe(1);
    // And the root grows several levels in one update of an empty region.
    const g = new ExtentMap<number>();
    const gp = Pages.of(n);
    g.set(0, n, 1);
    for (let i = 0; i < n; i += 2) g.set(i, i + 1, 2);
    g.update(0, n, (v, s) => (v === 2 ? undefined : 1 + (s % 3)));
    for (let i = 1; i < n; i += 2) gp.set(i, i + 1, 1 + (i % 3));
    same(g, gp, r);
  });

  it('appends and removes at both edges (the sequential patterns of fault paths)', () => {
    const r = rng(5);
    const n = 120_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    for (let i = 0; i < n; i += 2) {
      map.set(i, i + 1, 1 + ((i >> 1) % 2));
      pages.set(i, i + 1, 1 + ((i >> 1) % 2));
      if (i % 20_000 === 0) map.validate();
    }
    same(map, pages, r);
    // Fill the gaps from the left: each set merges three extents into one.
    for (let i = 1; i < n / 2; i += 2) {
      const v = pages.a[i - 1]!;
      map.set(i, i + 1, v);
      pages.set(i, i + 1, v);
      if (i % 10_001 === 0) map.validate();
    }
    same(map, pages, r);
    // Remove from the right end one extent at a time.
    for (let i = n - 2; i >= n / 2; i -= 2) {
      map.set(i, i + 1, undefined);
      pages.set(i, i + 1, undefined);
      if (i % 10_000 === 0) map.validate();
    }
    same(map, pages, r);
  });

  it('clones stay independent of each other and of the original across many levels', () => {
    const r = rng(6);
    const n = 100_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    for (let i = 0; i < n; i += 4) {
      map.set(i, i + 3, 1 + (i % 3));
      pages.set(i, i + 3, 1 + (i % 3));
    }
    expect(map.validate()).toBe(3);
    const clones: [ExtentMap<number>, Pages][] = [];
    for (let round = 0; round < 8; round++) {
      clones.push([map.clone(), pages.copy()]);
      for (let k = 0; k < 500; k++) randomOp(map, pages, r, 30_000);
      // Every clone so far moves on too, differently.
      for (const [c, p] of clones) for (let k = 0; k < 100; k++) randomOp(c, p, r, 30_000);
    }
    same(map, pages, r);
    for (const [c, p] of clones) same(c, p, r);
    // A clone of a clone, then the parent is cleared: the grandchild keeps its contents.
    const [c0, p0] = clones[0]!;
    const cc = c0.clone();
    c0.clear();
    same(cc, p0, r);
  });

  it('iterators keep their snapshot through splits, joins and subtree drops', () => {
    const r = rng(7);
    const n = 50_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    for (let i = 0; i < n; i += 3) {
      map.set(i, i + 2, 1 + (i % 4));
      pages.set(i, i + 2, 1 + (i % 4));
    }
    const before = [...map.entries()];
    const seen: typeof before = [];
    let k = 0;
    for (const e of map.entries()) {
      seen.push(e);
      if (k++ % 100 === 0) for (let j = 0; j < 50; j++) randomOp(map, pages, r, 5000);
    }
    expect(seen).toEqual(before);
    same(map, pages, r);
    // An abandoned iterator (one next(), no return()) costs at most one freeze; nothing breaks.
    const it1 = map.entries(1000, 2000);
    const first = it1.next();
    expect(first.done).toBe(false);
    for (let j = 0; j < 2000; j++) randomOp(map, pages, r, 5000);
    same(map, pages, r);
    // ...and it still walks its snapshot.
    expect(it1.next().done).toBe(false);
  });

  it('lookups next to the previous one stay right across in-place edits, splits, joins and clones', () => {
    // The map remembers the leaf of its last descent; every kind of edit must keep that honest.
    const r = rng(8);
    const n = 30_000;
    const map = new ExtentMap<number>();
    const pages = Pages.of(n);
    let clone: [ExtentMap<number>, Pages] | null = null;
    for (let i = 0; i < n - 8; i += 1 + Math.floor(r() * 3)) {
      const v = 1 + Math.floor(r() * 4);
      const w = r();
      if (w < 0.7) {
        map.set(i, i + 2, v);
        pages.set(i, i + 2, v);
      } else if (w < 0.9) {
        map.set(i, i + 1, undefined);
        pages.set(i, i + 1, undefined);
      } else {
        map.update(Math.max(0, i - 40), i + 3, (x) => (x === undefined ? v : undefined));
        for (let j = Math.max(0, i - 40); j < i + 3; j++) pages.a[j] = pages.a[j] === 0 ? v : 0;
      }
      for (const j of [i - 1, i, i + 1, i + 2, i + 3]) {
        if (j < 0) continue;
        expect(map.get(j)).toBe(pages.a[j] === 0 ? undefined : pages.a[j]);
      }
      if (i % 997 === 0) {
        if (clone !== null) same(clone[0], clone[1], r);
        clone = [map.clone(), pages.copy()];
      }
    }
    same(map, pages, r);
  });

  it('rejects negative and unsafe indices with RangeError, in set and update alike', () => {
    const m = new ExtentMap<number>();
    m.set(0, 10, 1);
    expect(() => m.set(2 ** 53, 2 ** 53 + 2, 1)).toThrow(RangeError);
    expect(() => m.set(0, 2 ** 53, 1)).toThrow(RangeError);
    expect(() => m.set(-5, -1, undefined)).toThrow(RangeError);
    expect(() => m.update(-1, 5, () => 1)).toThrow(RangeError);
    expect(() => m.update(1, Number.POSITIVE_INFINITY, () => 1)).toThrow(RangeError);
    expect([...m.entries()]).toEqual([{ start: 0, end: 10, value: 1 }]);
    // The largest safe index is fine.
    m.set(2 ** 53 - 2, 2 ** 53 - 1, 2);
    expect(m.get(2 ** 53 - 2)).toBe(2);
    m.validate();
  });
});

/** The internals validate() inspects, reached through reflection (tests only). */
interface RawNode {
  n: number;
  starts: number[];
  ends: number[];
  vals: unknown[];
  keys: number[];
  kids: RawNode[];
}
function rawRoot(m: ExtentMap<number>): RawNode {
  return Reflect.get(m, 'root') as RawNode;
}

describe('ExtentMap.validate() catches a malformed tree', () => {
  const build = (count: number): ExtentMap<number> => {
    const m = new ExtentMap<number>();
    for (let i = 0; i < count; i++) m.set(i * 4, i * 4 + 2, 1 + (i % 3));
    return m;
  };

  it('overlapping extents', () => {
    const m = build(10);
    rawRoot(m).ends[2] = rawRoot(m).starts[3]! + 1;
    expect(() => m.validate()).toThrow(/overlap/);
  });

  it('equal neighbours left unmerged', () => {
    const m = build(10);
    const root = rawRoot(m);
    root.ends[2] = root.starts[3]!;
    root.vals[3] = root.vals[2];
    expect(() => m.validate()).toThrow(/unmerged/);
  });

  it('a wrong extent count', () => {
    const m = build(10);
    Reflect.set(m, 'extents', 11);
    expect(() => m.validate()).toThrow(/size/);
  });

  it('a separator that does not separate', () => {
    const m = build(5000);
    const root = rawRoot(m);
    expect(m.validate()).toBe(3);
    root.keys[1] = root.keys[1]! + 40;
    expect(() => m.validate()).toThrow(/separators|separator/);
  });

  it('an underfull node below the root', () => {
    const m = build(5000);
    const leaf = rawRoot(m).kids[0]!.kids[0]!;
    for (let i = 5; i < leaf.n; i++) leaf.vals[i] = undefined;
    leaf.n = 5;
    expect(() => m.validate()).toThrow(/node of 5 entries/);
  });

  it('a value slot left behind beyond the end of a leaf', () => {
    const m = build(10);
    rawRoot(m).vals[20] = 1;
    expect(() => m.validate()).toThrow(/stale/);
  });
});
