/**
 * AnonPages (src/kernel/anon-pages.ts): private anonymous memory as written pages plus runs handed
 * over whole by writeShared(). Checked against a plain page-by-page map of the same operations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../src/index.js';
import { AnonPages } from '../src/kernel/anon-pages.js';

const PAGE = 4096;
/** A buffer of n pages whose page i is filled with (tag + i) & 0xff. */
const pagesOf = (n: number, tag: number): Uint8Array => {
  const b = new Uint8Array(n * PAGE);
  for (let i = 0; i < n; i++) b.fill((tag + i) & 0xff, i * PAGE, (i + 1) * PAGE);
  return b;
};
const firstByte = (p: Uint8Array | undefined): number | undefined => p?.[0];

describe('AnonPages', () => {
  it('reads a shared run page by page as views of the caller bytes, without copies', () => {
    const a = new AnonPages();
    const image = pagesOf(4, 10);
    a.share(100, image);
    expect(firstByte(a.get(99))).toBeUndefined();
    expect(firstByte(a.get(100))).toBe(10);
    expect(firstByte(a.get(103))).toBe(13);
    expect(firstByte(a.get(104))).toBeUndefined();
    expect(a.get(102)!.buffer).toBe(image.buffer);
    expect(a.get(102)!.length).toBe(PAGE);
  });

  it('a written page takes precedence over the run; a drop cuts the run and keeps both ends', () => {
    const a = new AnonPages();
    a.share(0, pagesOf(6, 0));
    a.set(1, new Uint8Array(PAGE).fill(0xaa));
    expect(firstByte(a.get(1))).toBe(0xaa);
    a.drop(1, 3);
    expect([0, 1, 2, 3, 4, 5].map((p) => firstByte(a.get(p)))).toEqual([0, undefined, undefined, 3, 4, 5]);
    a.drop(4, 5);
    expect([3, 4, 5].map((p) => firstByte(a.get(p)))).toEqual([3, undefined, 5]);
  });

  it('a second share over the range replaces written pages and the older run there', () => {
    const a = new AnonPages();
    a.share(0, pagesOf(4, 0));
    a.set(5, new Uint8Array(PAGE).fill(0x55));
    a.share(2, pagesOf(4, 100));
    expect([0, 1, 2, 3, 4, 5, 6].map((p) => firstByte(a.get(p)))).toEqual([
      0,
      1,
      100,
      101,
      102,
      103,
      undefined,
    ]);
    a.share(7, new Uint8Array(0));
    expect(a.get(7)).toBeUndefined();
  });

  it('agrees with a page-by-page map over random shares, writes and drops', () => {
    type Op =
      | { k: 'share'; first: number; n: number; tag: number }
      | { k: 'set'; page: number; tag: number }
      | { k: 'drop'; first: number; n: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('share' as const), first: fc.nat(40), n: fc.nat(12), tag: fc.nat(255) }),
      fc.record({ k: fc.constant('set' as const), page: fc.nat(50), tag: fc.nat(255) }),
      fc.record({ k: fc.constant('drop' as const), first: fc.nat(50), n: fc.nat(12) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const a = new AnonPages();
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.k === 'share') {
            a.share(o.first, pagesOf(o.n, o.tag));
            for (let i = 0; i < o.n; i++) model.set(o.first + i, (o.tag + i) & 0xff);
          } else if (o.k === 'set') {
            a.set(o.page, new Uint8Array(PAGE).fill(o.tag));
            model.set(o.page, o.tag);
          } else {
            a.drop(o.first, o.first + o.n);
            for (let i = 0; i < o.n; i++) model.delete(o.first + i);
          }
        }
        for (let p = 0; p < 64; p++) expect(firstByte(a.get(p))).toBe(model.get(p));
      }),
    );
  });
});

describe('writeShared() into anonymous memory, then a discard', () => {
  it('MADV_DONTNEED inside the image reads zeroes there and the image around it', () => {
    const host = createHost({ kernel: 'v7.0', invariants: false });
    const hva = host.mmap({
      length: 8 * PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    const image = pagesOf(8, 1);
    host.memory.writeShared(hva, image);
    host.madvise(hva + 3 * PAGE, 2 * PAGE, uapi.MADV_DONTNEED);
    const first = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => host.memory.read(hva + i * PAGE, 1)[0]);
    expect(first).toEqual([1, 2, 3, 0, 0, 6, 7, 8]);
    expect(image[3 * PAGE]).toBe(4); // the caller's bytes are untouched
  });
});
