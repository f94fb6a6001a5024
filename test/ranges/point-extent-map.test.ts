/**
 * PointExtentMap's own behaviour beyond the shared contract (test/ranges/extent-map.test.ts runs
 * the contract's random sequences against it): the page layer and the flush at ordered queries.
 */
import { describe, expect, it } from 'vitest';
import { ExtentMap, PageCells, PointExtentMap } from '../../src/ranges/index.js';

describe('PointExtentMap', () => {
  it('isEmpty(): true for a new map, false once a page holds a value, true again after a clear has been flushed', () => {
    const m = new PointExtentMap<number>();
    expect(m.isEmpty()).toBe(true);
    m.set(5, 6, 1);
    expect(m.isEmpty()).toBe(false);
    m.set(5, 6, undefined);
    expect(m.get(5)).toBeUndefined();
    expect(m.size).toBe(0);
    expect(m.isEmpty()).toBe(true);
  });

  it('a page set back to the value under it merges with its neighbours once flushed', () => {
    const m = new PointExtentMap<number>();
    m.set(0, 100, 8);
    m.set(40, 41, 0);
    expect(m.get(40)).toBe(0);
    expect(m.get(39)).toBe(8);
    m.set(40, 41, 8);
    expect(m.size).toBe(1);
    expect([...m.entries()]).toEqual([{ start: 0, end: 100, value: 8 }]);
  });

  it('scattered one-page sets read back before and after the flush, in page order', () => {
    const m = new PointExtentMap<number>();
    const ref = new ExtentMap<number>();
    const pages = [900, 3, 77, 4, 5, 1000, 76];
    for (const [i, p] of pages.entries()) {
      m.set(p, p + 1, i % 2);
      ref.set(p, p + 1, i % 2);
    }
    for (const p of pages) expect(m.get(p)).toBe(ref.get(p));
    expect([...m.entries()]).toEqual([...ref.entries()]);
    expect(m.size).toBe(ref.size);
    expect(m.validate()).toBe(ref.validate());
  });

  it('the flush puts pages of any size in order (each 16-bit digit of the radix sort)', () => {
    const m = new PointExtentMap<number>();
    const pages = [2 ** 52, 5, 70_000, 2 ** 33 + 1, 65_536, 0, 2 ** 48 - 1, 2 ** 32, 65_535];
    for (const [i, p] of pages.entries()) m.set(p, p + 1, i);
    const want = [...pages].sort((a, b) => a - b);
    expect([...m.entries()].map((e) => e.start)).toEqual(want);
    expect([...m.entries()].map((e) => e.value)).toEqual(want.map((p) => pages.indexOf(p)));
  });

  it('a large layer (the radix sort) comes out in page order with its values', () => {
    const m = new PointExtentMap<number>();
    const ref = new ExtentMap<number>();
    // 6,000 distinct pages spread over 2^50 (four 16-bit digits), values that never merge.
    for (let i = 0; i < 6000; i++) {
      const p = ((i * 2654435761) % 2 ** 34) * 65537;
      m.set(p, p + 1, i);
      ref.set(p, p + 1, i);
    }
    expect(m.size).toBe(6000);
    expect([...m.entries()]).toEqual([...ref.entries()]);
  });

  it('a large layer of pages below 2^32 (the 32-bit radix sort) comes out in page order with its values', () => {
    const m = new PointExtentMap<number>();
    const ref = new ExtentMap<number>();
    // Digit edges (0, 65535, 65536, 2^32 - 1) among 5,000 pages scattered below 2^32.
    const pages = [0, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32 - 65_536];
    for (let i = 1; pages.length < 5000; i++) pages.push(Math.imul(i, 0x9e3779b1) >>> 0);
    for (const [i, p] of pages.entries()) {
      m.set(p, p + 1, i);
      ref.set(p, p + 1, i);
    }
    expect(m.size).toBe(ref.size);
    expect([...m.entries()]).toEqual([...ref.entries()]);
  });

  it('a page set again after other pages reads its last value, before and after the flush and a range set', () => {
    const m = new PointExtentMap<number>();
    m.set(5, 6, 1);
    m.set(9, 10, 2);
    m.set(5, 6, 3); // page 5's first value is in the layer, its last one in the slot
    m.set(5, 6, undefined);
    m.set(5, 6, 4);
    expect([m.get(5), m.get(9)]).toEqual([4, 2]);
    expect(m.isEmpty()).toBe(false);
    m.set(4, 7, undefined); // drops the slot's page
    expect(m.get(5)).toBeUndefined();
    m.set(9, 10, undefined);
    expect([...m.entries()]).toEqual([]);
    m.set(6, 7, 8);
    const c = m.clone(); // the slot goes into the clone too
    m.set(6, 7, 9);
    expect([c.get(6), m.get(6)]).toEqual([8, 9]);
    m.clear();
    expect([m.isEmpty(), m.get(6)]).toEqual([true, undefined]);
  });

  it('an iterator keeps its snapshot while one-page sets go on', () => {
    const m = new PointExtentMap<number>();
    m.set(0, 10, 1);
    const it = m.entries();
    m.set(3, 4, 2);
    expect(m.get(3)).toBe(2);
    expect([...it]).toEqual([{ start: 0, end: 10, value: 1 }]);
    expect([...m.entries()].map((e) => e.value)).toEqual([1, 2, 1]);
  });

  it('a clone carries the layer and is independent of its source', () => {
    const m = new PointExtentMap<number>();
    m.set(7, 8, 1);
    const c = m.clone();
    m.set(7, 8, 2);
    c.set(8, 9, 3);
    expect(c.get(7)).toBe(1);
    expect(m.get(8)).toBeUndefined();
    expect([...c.entries()]).toEqual([
      { start: 7, end: 8, value: 1 },
      { start: 8, end: 9, value: 3 },
    ]);
  });

  it('a range set overrides the pages it covers in the layer, small or large', () => {
    const m = new PointExtentMap<number>();
    for (let p = 0; p < 100; p += 2) m.set(p, p + 1, 1);
    m.set(10, 20, 5); // a short range: the covered pages leave the layer one by one
    for (let p = 10; p < 20; p++) expect(m.get(p)).toBe(5);
    m.set(30, 90, undefined); // a long range over a big layer: flushed first
    for (let p = 30; p < 90; p++) expect(m.get(p)).toBeUndefined();
    expect(m.get(28)).toBe(1);
    expect(m.get(90)).toBe(1);
  });

  it('bad page ranges are refused as by ExtentMap', () => {
    const m = new PointExtentMap<number>();
    expect(() => m.set(-1, 0, 1)).toThrow(RangeError);
    expect(() => m.set(1.5, 2.5, 1)).toThrow(RangeError);
    expect(() => m.update(2 ** 53, 2 ** 53 + 1, () => 1)).toThrow(RangeError);
    // The last safe page has no safe end: refused, as by ExtentMap, and the map stays usable.
    expect(() => m.set(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 1)).toThrow(RangeError);
    expect(() => m.update(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, () => 1)).toThrow(RangeError);
    // A refused range leaves the layer's pages as they were.
    m.set(3, 4, 7);
    expect(() => m.set(2, 5.5, 1)).toThrow(RangeError);
    expect(m.get(3)).toBe(7);
    expect(m.size).toBe(1);
  });
});

describe('PointExtentMap sharing its page layer (PageCells)', () => {
  /** Two maps in one layer, each page 0..n-1 overridden in both (a: p, b: 100 + p), slots moved on. */
  function pair(n: number): [PointExtentMap<number>, PointExtentMap<number>] {
    const cells = new PageCells();
    const a = new PointExtentMap<number>(undefined, cells);
    const b = new PointExtentMap<number>(undefined, cells);
    for (let p = 0; p < n; p++) {
      a.set(p, p + 1, p);
      b.set(p, p + 1, 100 + p);
    }
    a.set(5000, 5001, 1);
    b.set(5000, 5001, 1);
    return [a, b];
  }
  const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo }, (_, i) => lo + i);

  it('a range edit of one map leaves the other map its pages: short ranges, a small layer, a flushed one', () => {
    for (const n of [10, 100]) {
      const [a, b] = pair(n);
      a.set(2, 5, undefined); // short: page by page
      a.set(0, 1000, 7); // long: the pages a put in its layer, or a flush past SCAN_MAX of them
      expect(range(0, n).map((p) => a.get(p))).toEqual(range(0, n).map(() => 7));
      expect(range(0, n).map((p) => b.get(p))).toEqual(range(100, 100 + n));
      b.set(1, 3, undefined);
      expect([b.get(0), b.get(1), b.get(2), b.get(3), a.get(1)]).toEqual([100, undefined, undefined, 103, 7]);
      expect(b.size).toBe(n - 1);
    }
  });

  it('a map with few pages in a big layer flushes and range-edits its own pages (some dropped and put again)', () => {
    const cells = new PageCells();
    const a = new PointExtentMap<number>(undefined, cells);
    const b = new PointExtentMap<number>(undefined, cells);
    for (let p = 0; p < 2000; p++) b.set(p, p + 1, p % 7);
    for (let p = 0; p < 400; p += 10) a.set(p, p + 1, p);
    a.set(0, 25, undefined); // pages 0, 10, 20 leave a's column...
    a.set(10, 11, 1); // ...and 10 comes back
    a.set(100, 400, 5); // 40 pages put: past SCAN_MAX, a flush of a's own pages
    const want = new Map<number, number>([[10, 1]]);
    for (let p = 30; p < 100; p += 10) want.set(p, p);
    for (let p = 100; p < 400; p++) want.set(p, 5);
    expect(range(0, 400).map((p) => a.get(p))).toEqual(range(0, 400).map((p) => want.get(p)));
    expect([...a.entries()].flatMap((e) => range(e.start, e.end).map((p) => [p, e.value]))).toEqual([
      ...want,
    ]);
    expect(range(0, 2000).every((p) => b.get(p) === p % 7)).toBe(true);
    expect(b.size).toBe(2000);
  });

  it('flushing or clearing one map keeps the other map its pages; then the layer empties', () => {
    const [a, b] = pair(40);
    expect(a.size).toBe(41); // pages 0..39 (distinct values) and 5000
    expect(range(0, 40).map((p) => b.get(p))).toEqual(range(100, 140));
    b.clear();
    expect([b.isEmpty(), b.get(3), a.get(3)]).toEqual([true, undefined, 3]);
    b.set(3, 4, 9);
    a.clear();
    expect([a.isEmpty(), a.get(3), b.get(3), b.size]).toEqual([true, undefined, 9, 1]);
  });

  it('an ordered query of one map with both columns big flushes both at once: each map keeps its values and gaps', () => {
    // Page sets of both maps (some pages in one column only, some cleared) against plain ExtentMaps;
    // 6000 pages take the radix sort, pages from 2^32 on the wide one, 300 the comparison sort.
    for (const [n, base] of [
      [6000, 0],
      [6000, 2 ** 33],
      [300, 7],
    ]) {
      const cells = new PageCells();
      const a = new PointExtentMap<number>(undefined, cells);
      const b = new PointExtentMap<number>(undefined, cells);
      const refA = new ExtentMap<number>();
      const refB = new ExtentMap<number>();
      refA.set(0, 2 ** 40, 1);
      a.set(0, 2 ** 40, 1); // a range set: a tree under a's column
      const both = (
        m: PointExtentMap<number>,
        r: ExtentMap<number>,
        p: number,
        v: number | undefined,
      ): void => {
        m.set(p, p + 1, v);
        r.set(p, p + 1, v);
      };
      for (let i = 0; i < n; i++) {
        const p = base + ((i * 7919) % (4 * n)); // scattered, some pages hit twice
        if (i % 5 !== 0) both(a, refA, p, i % 3 === 0 ? undefined : 10 + i);
        if (i % 7 !== 0) both(b, refB, p, i % 4 === 0 ? undefined : 20 + i);
      }
      // Pages with a value in both columns (the only kind in a layer of plain columns).
      for (let i = 0; i < n; i++) {
        const p = base + 5 * n + 3 * i;
        both(a, refA, p, i);
        both(b, refB, p, -i);
      }
      expect(a.size).toBe(refA.size); // b's column goes to b's tree too
      expect([...b.entries()]).toEqual([...refB.entries()]);
      expect([...a.entries()]).toEqual([...refA.entries()]);
      // Both go on from their trees.
      both(a, refA, base + 3, 99);
      both(b, refB, base + 3, 98);
      expect([a.get(base + 3), b.get(base + 3), b.size]).toEqual([99, 98, refB.size]);
      expect([...a.entries()]).toEqual([...refA.entries()]);
    }
  });

  it('a joint flush of columns that hold a value in every cell hands the sorted pages over as they are', () => {
    const cells = new PageCells();
    const a = new PointExtentMap<number>(undefined, cells);
    const b = new PointExtentMap<number>(undefined, cells);
    const pages = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 65_536);
    for (const p of pages) {
      a.set(p, p + 1, p * 2);
      b.set(p, p + 1, p * 3);
    }
    expect(b.size).toBe(5000); // flushes both columns: a's too
    const sorted = [...pages].sort((x, y) => x - y);
    expect([...a.entries()]).toEqual(sorted.map((p) => ({ start: p, end: p + 1, value: p * 2 })));
    expect([...b.entries()]).toEqual(sorted.map((p) => ({ start: p, end: p + 1, value: p * 3 })));
  });

  it('a clone of a sharing map has a layer of its own', () => {
    const [a, b] = pair(3);
    const c = b.clone();
    c.set(1, 2, 55);
    b.set(2, 3, 66);
    a.set(1, 2, 77);
    expect([c.get(1), c.get(2), b.get(1), b.get(2), a.get(1)]).toEqual([55, 102, 101, 66, 77]);
  });

  it('a layer serves two maps', () => {
    const cells = new PageCells();
    new PointExtentMap<number>(undefined, cells);
    new PointExtentMap<number>(undefined, cells);
    expect(() => new PointExtentMap<number>(undefined, cells)).toThrow(/two maps/);
  });
});
