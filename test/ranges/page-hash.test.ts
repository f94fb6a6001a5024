/**
 * PageHash against a Map: random sets, deletes, lookups, clears and walks (deleting as they go),
 * over pages that collide in the probe table, pages from 2^31 on (kept apart), and enough entries
 * to grow the table and to compact it after mass deletes. A pair table (two values per page,
 * through entries) against a Map of pairs, the same way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageHash } from '../../src/ranges/page-hash.js';

type Op =
  | { kind: 'set'; page: number; v: number }
  | { kind: 'delete'; page: number }
  | { kind: 'clear' }
  | { kind: 'walkDelete'; mod: number }
  | { kind: 'bulk'; from: number; n: number; stride: number };

/** Pages: a small dense range (collisions, reuse), multiples of a big stride, and pages past 2^31. */
const page = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 0, max: 60 }).map((i) => i * 65_536),
  fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 2),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('set' as const), page, v: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('delete' as const), page }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('walkDelete' as const), mod: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('bulk' as const),
      from: fc.integer({ min: 0, max: 1000 }),
      n: fc.integer({ min: 0, max: 300 }),
      stride: fc.integer({ min: 1, max: 4096 }),
    }),
  },
);

/** Everything observable: size, each page's value and presence, and the walk (as a set of entries). */
function same(h: PageHash<number>, m: Map<number, number>, probes: number[]): void {
  expect(h.size).toBe(m.size);
  for (const p of probes) {
    expect(h.get(p)).toBe(m.get(p));
    expect(h.has(p)).toBe(m.has(p));
  }
  const walked: [number, number][] = [];
  h.forEach((v, p) => {
    walked.push([p, v]);
  });
  expect(walked.sort((a, b) => a[0] - b[0])).toEqual([...m].sort((a, b) => a[0] - b[0]));
}

describe('PageHash', () => {
  it('behaves as a Map from pages to values under random sets, deletes, clears and walks', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const h = new PageHash<number>();
        const m = new Map<number, number>();
        const probes = new Set<number>([0, 1, 2 ** 31, 2 ** 53 - 2]);
        for (const op of ops) {
          switch (op.kind) {
            case 'set':
              h.set(op.page, op.v);
              m.set(op.page, op.v);
              probes.add(op.page);
              break;
            case 'delete':
              expect(h.delete(op.page)).toBe(m.delete(op.page));
              break;
            case 'clear':
              h.clear();
              m.clear();
              break;
            case 'walkDelete': {
              // Deleting the entry being visited (as the page layers' flushes do) and others: an
              // entry deleted before its turn is not visited.
              const gone = new Set<number>();
              h.forEach((_, p) => {
                expect(gone.has(p)).toBe(false);
                if (p % op.mod === 0) {
                  h.delete(p);
                  m.delete(p);
                } else {
                  const q = [...m.keys()].reverse().find((x) => x !== p); // likely not visited yet
                  if (q !== undefined) {
                    h.delete(q);
                    m.delete(q);
                    gone.add(q);
                  }
                }
              });
              break;
            }
            case 'bulk':
              for (let i = 0; i < op.n; i++) {
                const p = op.from + i * op.stride;
                h.set(p, i);
                m.set(p, i);
                if (i % 50 === 0) probes.add(p);
              }
              break;
          }
        }
        same(h, m, [...probes]);
      }),
      { numRuns: 500 },
    );
  });

  it('a walk that deletes entries ahead of it never visits them, though the deletes empty most of the table', () => {
    const h = new PageHash<number>();
    const left = new Set<number>();
    for (let p = 0; p < 300; p++) {
      h.set(p * 7, p);
      left.add(p * 7);
    }
    const visited: number[] = [];
    h.forEach((_, p) => {
      visited.push(p);
      expect(left.has(p)).toBe(true);
      h.delete(p);
      left.delete(p);
      const ahead = [...left].pop(); // the last inserted page still there: not visited yet
      if (ahead !== undefined) {
        h.delete(ahead);
        left.delete(ahead);
      }
    });
    expect([visited.length, h.size]).toEqual([150, 0]);
  });

  it('no entry for a negative or fractional page, even where the table has empty and deleted slots; set refuses them', () => {
    const h = new PageHash<number>();
    for (let p = 0; p < 20; p++) h.set(p, p);
    for (let p = 0; p < 20; p += 2) h.delete(p);
    // -0 is page 0, deleted above.
    for (const p of [-1, -2, 0.5, -0])
      expect([h.get(p), h.has(p), h.delete(p)]).toEqual([undefined, false, false]);
    for (const p of [-1, 1.5, 2 ** 53, Number.NaN]) expect(() => h.set(p, 1)).toThrow(RangeError);
    expect([h.size, h.get(1), h.get(19)]).toEqual([10, 1, 19]);
  });

  it('grows past a million pages, then compacts after mass deletes and keeps the survivors', () => {
    const h = new PageHash<number>();
    const n = 1 << 20;
    const pageOf = (i: number): number => (Math.imul(i, 0x9e3779b1) >>> 0) % 2 ** 28;
    for (let i = 0; i < n; i++) h.set(pageOf(i), i);
    expect(h.size).toBe(n);
    expect([h.get(pageOf(0)), h.get(pageOf(n - 1)), h.get(2 ** 28)]).toEqual([0, n - 1, undefined]);
    for (let i = 0; i < n; i++) if (i % 1000 !== 0) h.delete(pageOf(i));
    expect(h.size).toBe(Math.ceil(n / 1000));
    let walked = 0;
    h.forEach((v, p) => {
      expect(p).toBe(pageOf(v));
      expect(v % 1000).toBe(0);
      walked++;
    });
    expect(walked).toBe(h.size);
  });

  it('a pair table behaves as a Map from pages to pairs, through entries, under random adds, column writes, deletes, clears and walks', () => {
    type PairOp =
      | { kind: 'add'; page: number; a: number; b: number }
      | { kind: 'col'; page: number; second: boolean; v: number }
      | { kind: 'delete'; page: number }
      | { kind: 'clear' }
      | { kind: 'walk'; mod: number };
    const pairOp: fc.Arbitrary<PairOp> = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ kind: fc.constant('add' as const), page, a: fc.integer(), b: fc.integer() }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('col' as const),
          page,
          second: fc.boolean(),
          v: fc.integer(),
        }),
      },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('delete' as const), page }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('walk' as const), mod: fc.integer({ min: 1, max: 3 }) }),
      },
    );
    fc.assert(
      fc.property(fc.array(pairOp, { maxLength: 120 }), (ops) => {
        const h = new PageHash<number, number>(true);
        const m = new Map<number, [number, number]>();
        for (const op of ops) {
          switch (op.kind) {
            case 'add':
              // add() on a page that has an entry writes both values of that entry.
              expect(h.valueAt(h.add(op.page, op.a, op.b))).toBe(op.a);
              m.set(op.page, [op.a, op.b]);
              break;
            case 'col': {
              const e = h.entryOf(op.page);
              const want = m.get(op.page);
              expect(e >= 0).toBe(want !== undefined);
              if (want === undefined) break;
              if (op.second) h.setValue2At(e, op.v);
              else h.setValueAt(e, op.v);
              want[op.second ? 1 : 0] = op.v;
              // set() keeps the second value.
              if (!op.second) h.set(op.page, op.v);
              break;
            }
            case 'delete':
              expect(h.delete(op.page)).toBe(m.delete(op.page));
              break;
            case 'clear':
              h.clear();
              m.clear();
              break;
            case 'walk':
              // Rewriting each visited entry's second value and deleting some as they go.
              h.forEachEntry((e, p) => {
                expect([h.valueAt(e), h.value2At(e)]).toEqual(m.get(p));
                if (p % op.mod === 0) {
                  h.delete(p);
                  m.delete(p);
                } else {
                  h.setValue2At(e, -p);
                  m.get(p)![1] = -p;
                }
              });
              break;
          }
        }
        expect(h.size).toBe(m.size);
        for (const [p, [a, b]] of m) {
          const e = h.entryOf(p);
          expect([h.valueAt(e), h.value2At(e), h.get(p)]).toEqual([a, b, a]);
        }
        const walked: number[] = [];
        h.forEachEntry((_, p) => walked.push(p));
        expect(walked.sort((x, y) => x - y)).toEqual([...m.keys()].sort((x, y) => x - y));
      }),
      { numRuns: 500 },
    );
  });

  it('a pair table keeps both values through growth and through the compaction that renumbers entries', () => {
    const h = new PageHash<number, number>(true);
    const n = 5000;
    for (let i = 0; i < n; i++) h.add(i * 3 + (i % 7 === 0 ? 2 ** 33 : 0), i, -i);
    for (let i = 0; i < n; i++) if (i % 10 !== 0) h.delete(i * 3 + (i % 7 === 0 ? 2 ** 33 : 0));
    // The deletes compacted the entries; one more add after them lands on a fresh entry.
    const e = h.add(1, 7, 8);
    expect([h.valueAt(e), h.value2At(e), h.size]).toEqual([7, 8, n / 10 + 1]);
    // An add whose growth compacts deleted entries away returns the entry's new number.
    const small = new PageHash<number, number>(true);
    for (let p = 0; p < 5; p++) small.add(p, p, -p);
    for (let p = 0; p < 3; p++) small.delete(p);
    for (let p = 100; p < 110; p++) {
      const x = small.add(p * 16, p, -p);
      expect([small.valueAt(x), small.value2At(x)]).toEqual([p, -p]);
    }
    for (let i = 0; i < n; i += 10) {
      const p = i * 3 + (i % 7 === 0 ? 2 ** 33 : 0);
      const x = h.entryOf(p);
      expect([h.valueAt(x), h.value2At(x)]).toEqual([i, -i]);
    }
  });
});
