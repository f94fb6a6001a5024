/**
 * The TDX module's MRTD fast path (TdMeasurement.memPageAddChecked / mrExtendChecked, used by the
 * modelled TDH.MEM.PAGE.ADD / TDH.MR.EXTEND) must hash exactly the stream of the checked API
 * (memPageAdd / mrExtend, the td-shim tee_info_hash.rs build_mrtd() layout): same digest for the
 * same operations, including GPAs above 4 GiB, zero pages and a stream longer than the staging buffer.
 */
import { describe, expect, it } from 'vitest';
import { TDX_EXTENDMR_CHUNKSIZE, TDX_PAGE_SIZE, TdMeasurement } from '../../src/kernel/arch/tdx/mrtd.js';

describe('MRTD: the module fast path hashes the same stream as the checked API', () => {
  it('PAGE.ADD + 16 MR.EXTEND per page over 200 pages at and above 4 GiB, some zero pages', () => {
    const checked = new TdMeasurement();
    const fast = new TdMeasurement();
    const page = new Uint8Array(TDX_PAGE_SIZE);
    for (let p = 0; p < 200; p++) {
      const gpa = 0xff_ffe0_0000 + p * TDX_PAGE_SIZE; // crosses 2^32 in the GPA's high word
      const zero = p % 7 === 3;
      for (let i = 0; i < page.length; i++) page[i] = zero ? 0 : (i * 31 + p) & 0xff;
      checked.memPageAdd(BigInt(gpa));
      fast.memPageAddChecked(gpa);
      for (let off = 0; off < TDX_PAGE_SIZE; off += TDX_EXTENDMR_CHUNKSIZE) {
        checked.mrExtend(BigInt(gpa + off), page.subarray(off, off + TDX_EXTENDMR_CHUNKSIZE));
        fast.mrExtendChecked(gpa + off, zero ? null : page, off);
      }
    }
    // 200 x 6272 bytes: well past the 64 KiB staging buffer, so flushes happen mid-stream.
    expect(Buffer.from(fast.finalize()).toString('hex')).toBe(
      Buffer.from(checked.finalize()).toString('hex'),
    );
  });

  it('the fast path refuses operations after TDH.MR.FINALIZE like the checked one', () => {
    const m = new TdMeasurement();
    m.finalize();
    expect(() => m.memPageAddChecked(0)).toThrow(/already finalized/);
    expect(() => m.mrExtendChecked(0, null, 0)).toThrow(/already finalized/);
  });
});
