/**
 * PageBytes (src/kernel/page-bytes.ts): the page -> bytes store of anonymous memory, shmem and
 * guest_memfd, with the page stored last in a slot in front of its Map. Slot and Map must read as
 * one map of pages.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageBytes } from '../src/kernel/page-bytes.js';

const page = (b: number): Uint8Array => Uint8Array.of(b);

describe('PageBytes', () => {
  it('starts empty: size 0, no page, no key -1', () => {
    const p = new PageBytes();
    expect(p.size).toBe(0);
    expect(p.get(0)).toBeUndefined();
    expect(p.has(-1)).toBe(false);
  });

  it('swings between one page and none (write, discard, write again)', () => {
    const p = new PageBytes();
    for (let i = 0; i < 3; i++) {
      const bytes = page(i);
      p.set(7 + i, bytes);
      expect([p.size, p.get(7 + i), p.has(7 + i)]).toEqual([1, bytes, true]);
      p.delete(7 + i);
      expect([p.size, p.get(7 + i), p.has(7 + i)]).toEqual([0, undefined, false]);
    }
  });

  it('a page moves from the slot to the Map when another is stored, and is found in either', () => {
    const p = new PageBytes();
    p.set(1, page(1));
    p.set(2, page(2));
    p.set(1, page(11)); // back into the slot: the Map copy must go
    expect([p.size, p.get(1), p.get(2)]).toEqual([2, page(11), page(2)]);
    p.delete(1);
    expect([p.size, p.get(1), p.has(1), p.get(2)]).toEqual([1, undefined, false, page(2)]);
    p.delete(2);
    expect(p.size).toBe(0);
  });

  it('delete(-1) and drop() over everything leave the store usable, and clear() empties it', () => {
    const p = new PageBytes();
    p.delete(-1);
    p.set(2, page(2));
    p.set(3, page(3));
    p.drop(0, 2 ** 40);
    expect(p.size).toBe(0);
    p.set(4, page(4));
    expect(p.get(4)).toEqual(page(4));
    p.clear();
    expect([p.size, p.get(4)]).toEqual([0, undefined]);
    p.set(5, page(5));
    expect(p.size).toBe(1);
  });

  it('behaves as a plain Map of pages under random sets, deletes, drops and clears', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), p: fc.nat(40), b: fc.nat(255) }),
      fc.record({ k: fc.constant('delete' as const), p: fc.nat(40) }),
      // Short and long ranges: drop walks the range or the stored keys, whichever is smaller.
      fc.record({ k: fc.constant('drop' as const), p: fc.nat(40), n: fc.oneof(fc.nat(3), fc.nat(100)) }),
      fc.record({ k: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const p = new PageBytes();
        const m = new Map<number, Uint8Array>();
        for (const o of ops) {
          if (o.k === 'set') {
            p.set(o.p, page(o.b));
            m.set(o.p, page(o.b));
          } else if (o.k === 'delete') {
            p.delete(o.p);
            m.delete(o.p);
          } else if (o.k === 'drop') {
            p.drop(o.p, o.p + o.n);
            for (const k of [...m.keys()]) if (k >= o.p && k < o.p + o.n) m.delete(k);
          } else {
            p.clear();
            m.clear();
          }
          expect(p.size).toBe(m.size);
        }
        for (let k = -1; k <= 41; k++) {
          expect(p.get(k < 0 ? 0 : k)).toEqual(m.get(k < 0 ? 0 : k));
          expect(p.has(k)).toBe(m.has(k));
        }
      }),
    );
  });
});
