/**
 * The in-place leaf edit (ExtentMap.editLeaf): set() and clear find the extents to replace by
 * stepping from the position of the descent, a few steps, then a binary search. These cases pack
 * many one-page extents into each leaf, then replace runs of 1 to 40 of them at every offset, so
 * each step count and the binary-search fallback are taken on both sides of the edited page, and
 * at the first and last entry of leaves. Checked against a per-page array after every operation.
 */
import { describe, expect, it } from 'vitest';
import { ExtentMap } from '../../src/ranges/index.js';

/** The map's extents as [start, end, value] triples. */
function triples(m: ExtentMap<number>): number[][] {
  return [...m.entries()].map((e) => [e.start, e.end, e.value]);
}

/** Maximal runs of a per-page array (0 = gap). */
function runs(a: number[]): number[][] {
  const out: number[][] = [];
  let i = 0;
  while (i < a.length) {
    let j = i + 1;
    while (j < a.length && a[j] === a[i]) j++;
    if (a[i] !== 0) out.push([i, j, a[i]!]);
    i = j;
  }
  return out;
}

describe('ExtentMap in-place leaf edits', () => {
  it('replacing 1..40 one-page extents at every offset of densely packed leaves matches a per-page model', () => {
    const N = 600;
    const map = new ExtentMap<number>();
    const pages = new Array<number>(N).fill(0);
    // Alternating values: every page its own extent (several full leaves, two levels).
    for (let i = 0; i < N; i++) {
      const v = 1 + (i % 2);
      map.set(i, i + 1, v);
      pages[i] = v;
    }
    let ops = 0;
    for (let len = 1; len <= 40; len += 3) {
      for (let s = 0; s + len <= N; s += 7) {
        const v = ops % 5 === 0 ? undefined : 3 + (ops % 4);
        map.set(s, s + len, v);
        pages.fill(v ?? 0, s, s + len);
        ops++;
        // Restore the alternating pattern around the edit, one page at a time (one-page sets).
        for (let i = Math.max(0, s - 2); i < Math.min(N, s + len + 2); i++) {
          const w = 1 + (i % 2);
          map.set(i, i + 1, w);
          pages[i] = w;
        }
        if (ops % 16 === 0) {
          map.validate();
          expect(triples(map)).toEqual(runs(pages));
        }
      }
    }
    map.validate();
    expect(triples(map)).toEqual(runs(pages));
    expect(map.size).toBe(N);
  });

  it('one-page sets that split, join and extend neighbours keep exact extents and size', () => {
    const map = new ExtentMap<number>();
    const pages = new Array<number>(300).fill(0);
    map.set(0, 300, 1);
    pages.fill(1);
    // Split the big extent at scattered pages (3 extents each), then heal some of them.
    for (let k = 0; k < 60; k++) {
      const g = (k * 37) % 300;
      map.set(g, g + 1, 10 + k);
      pages[g] = 10 + k;
    }
    expect(triples(map)).toEqual(runs(pages));
    for (let k = 0; k < 60; k += 2) {
      const g = (k * 37) % 300;
      map.set(g, g + 1, 1);
      pages[g] = 1;
    }
    for (let k = 1; k < 60; k += 4) {
      const g = (k * 37) % 300;
      map.set(g, g + 1, undefined);
      pages[g] = 0;
    }
    map.validate();
    expect(triples(map)).toEqual(runs(pages));
    expect(map.size).toBe(runs(pages).length);
  });
});
