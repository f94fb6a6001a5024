/**
 * TdMeasurement.memPageAddExtendChecked(): the stream of one measured page (KVM's TDH.MEM.PAGE.ADD
 * then its 16 TDH.MR.EXTEND of 256 bytes, tdx_gmem_post_populate() with KVM_TDX_MEASURE_MEMORY_REGION)
 * built in place in the staging buffer must hash exactly what the checked API (memPageAdd /
 * mrExtend, the td-shim tee_info_hash.rs build_mrtd() layout) hashes for the same operations:
 * mixed with lone PAGE.ADDs and MR.EXTENDs that leave the stage off a page-block boundary or
 * overwrite the header pattern, zero (null) and short pages, GPAs whose high word is not 0.
 */
import { describe, expect, it } from 'vitest';
import { TDX_EXTENDMR_CHUNKSIZE, TDX_PAGE_SIZE, TdMeasurement } from '../../src/kernel/arch/tdx/mrtd.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function pageBytes(seed: number): Uint8Array {
  const page = new Uint8Array(TDX_PAGE_SIZE);
  for (let i = 0; i < page.length; i++) page[i] = (i * 131 + seed * 17 + (i >> 8)) & 0xff;
  return page;
}

/** The checked API's stream of a measured page (`page` null = zeroes; shorter = zero-padded). */
function checkedPage(m: TdMeasurement, gpa: number, page: Uint8Array | null): void {
  const full = new Uint8Array(TDX_PAGE_SIZE);
  if (page) full.set(page);
  m.memPageAdd(BigInt(gpa));
  for (let off = 0; off < TDX_PAGE_SIZE; off += TDX_EXTENDMR_CHUNKSIZE)
    m.mrExtend(BigInt(gpa + off), full.subarray(off, off + TDX_EXTENDMR_CHUNKSIZE));
}

describe('MRTD: a measured page built in place hashes the same stream as the checked API', () => {
  it('runs of measured pages between lone PAGE.ADDs and MR.EXTENDs, zero and short pages, GPAs above 4 GiB', () => {
    const checked = new TdMeasurement();
    const fast = new TdMeasurement();
    let gpa = 0xff_fff0_0000; // the high word changes on the way (crosses 2^40 - 1 MiB .. 2^40)
    for (let p = 0; p < 300; p++, gpa += TDX_PAGE_SIZE) {
      const kind = p % 23;
      if (kind === 5 || kind === 6) {
        // A page added without MEASURE: one lone 128-byte buffer, the stage is off a block boundary.
        checked.memPageAdd(BigInt(gpa));
        fast.memPageAddChecked(gpa);
        continue;
      }
      if (kind === 11) {
        // TDH.MR.EXTEND on its own (two-pass order, mrExtendPage): 384-byte writes over the pattern.
        checked.memPageAdd(BigInt(gpa));
        fast.memPageAddChecked(gpa);
        const page = pageBytes(p);
        for (let off = 0; off < TDX_PAGE_SIZE; off += TDX_EXTENDMR_CHUNKSIZE) {
          checked.mrExtend(BigInt(gpa + off), page.subarray(off, off + TDX_EXTENDMR_CHUNKSIZE));
          fast.mrExtendChecked(gpa + off, page, off);
        }
        continue;
      }
      const page = kind === 3 ? null : kind === 17 ? pageBytes(p).subarray(0, 1000) : pageBytes(p);
      checkedPage(checked, gpa, page);
      fast.memPageAddExtendChecked(gpa, page);
    }
    // 300 pages of up to 6272 bytes: many flushes of the 62,720-byte stage, at and off block boundaries.
    expect(hex(fast.finalize())).toBe(hex(checked.finalize()));
  });

  it('a second TD measured alongside does not disturb the first (separate stages)', () => {
    const a = new TdMeasurement();
    const b = new TdMeasurement();
    const ref = new TdMeasurement();
    for (let p = 0; p < 40; p++) {
      const gpa = 0xffe2_0000 + p * TDX_PAGE_SIZE;
      a.memPageAddExtendChecked(gpa, pageBytes(p));
      b.memPageAddChecked(gpa);
      checkedPage(ref, gpa, pageBytes(p));
    }
    expect(hex(a.finalize())).toBe(hex(ref.finalize()));
  });

  it('is refused after TDH.MR.FINALIZE like the checked API', () => {
    const m = new TdMeasurement();
    m.finalize();
    expect(() => m.memPageAddExtendChecked(0, null)).toThrow(/already finalized/);
  });
});
