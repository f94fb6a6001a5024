/** kernel/uaccess.ts helpers that take plain Numbers on hot paths. */
import { describe, expect, it } from 'vitest';
import { pageAligned, pageAlignedNum } from '../src/kernel/uaccess.js';

describe('pageAlignedNum', () => {
  it('agrees with the bigint pageAligned() on page multiples and their neighbours, below and above 2^31', () => {
    const pages = [0, 1, 0x7ffff, 0x80000, 2 ** 20 + 3, 2 ** 40 + 5, 2 ** 40 - 1];
    for (const p of pages)
      for (const d of [-1, 0, 1, 8, 2048, 4095]) {
        const x = p * 4096 + d;
        if (x < 0 || !Number.isSafeInteger(x)) continue;
        expect([x, pageAlignedNum(x)]).toEqual([x, pageAligned(BigInt(x))]);
      }
  });

  it('is false for what no page address is: fractions, NaN, infinities', () => {
    expect([0.5, 4096.5, Number.NaN, Number.POSITIVE_INFINITY].map(pageAlignedNum)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});
