/**
 * TdMeasurement: the TDX module's MRTD stream, checked against the block layout of
 * shared/reference/measurement.md 5.1 (and td-shim tee_info_hash.rs build_mrtd()).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TdMeasurement, TdMeasurementError } from '../../src/kernel/arch/tdx/mrtd.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha384 = (...parts: Uint8Array[]): string => {
  const h = createHash('sha384');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** measurement.md 5.1: the worked PAGE.ADD buffer for GPA 0xFFFFC000. */
const PAGE_ADD_FFFFC000 = Buffer.concat([
  Buffer.from('4d454d2e504147452e414444' + '00000000' + '00c0ffff00000000', 'hex'),
  Buffer.alloc(104),
]);

/** measurement.md 5.1: MR.EXTEND header = "MR.EXTEND", zeros to 16, u64 LE GPA, zeros to 128. */
function mrExtendHeader(gpa: bigint): Buffer {
  const b = Buffer.alloc(128);
  b.write('MR.EXTEND', 0, 'ascii');
  b.writeBigUInt64LE(gpa, 16);
  return b;
}

describe('TdMeasurement (measurement.md 5.1)', () => {
  it('PAGE.ADD hashes the documented 128-byte buffer', () => {
    expect(PAGE_ADD_FFFFC000.length).toBe(128);
    const m = new TdMeasurement();
    m.memPageAdd(0xffffc000n);
    expect(hex(m.finalize())).toBe(sha384(PAGE_ADD_FFFFC000));
  });

  it('MR.EXTEND hashes the header then the 256 chunk bytes; one hash over the whole stream', () => {
    const chunk = new Uint8Array(256).map((_, i) => 255 - i);
    const m = new TdMeasurement();
    m.memPageAdd(0xffffc000n);
    m.mrExtend(0xffffc100n, chunk);
    const digest = m.finalize();
    expect(digest.length).toBe(48);
    expect(hex(digest)).toBe(sha384(PAGE_ADD_FFFFC000, mrExtendHeader(0xffffc100n), chunk));
  });

  it('a stream larger than the staging buffer gives the same digest as one SHA-384 over it', () => {
    const chunk = new Uint8Array(256).map((_, i) => i);
    const m = new TdMeasurement();
    const parts: Uint8Array[] = [];
    for (let i = 0n; i < 1000n; i++) {
      m.mrExtend(0x100000n + i * 256n, chunk);
      parts.push(mrExtendHeader(0x100000n + i * 256n), chunk);
      if (i % 16n === 15n) {
        m.memPageAdd(0x200000n + i * 4096n);
        const add = Buffer.alloc(128);
        add.write('MEM.PAGE.ADD', 0, 'ascii');
        add.writeBigUInt64LE(0x200000n + i * 4096n, 16);
        parts.push(add);
      }
    }
    expect(hex(m.finalize())).toBe(sha384(...parts));
  });

  it('the empty stream is SHA-384 of nothing', () => {
    expect(hex(new TdMeasurement().finalize())).toBe(sha384());
  });

  it('TDH.MR.FINALIZE closes the measurement: later operations fail with reason "finalized"', () => {
    const m = new TdMeasurement();
    expect(m.finalized).toBe(false);
    const first = m.finalize();
    expect(m.finalized).toBe(true);
    first.fill(0); // the caller's copy; the module's MRTD is unaffected
    for (const op of [
      () => m.finalize(),
      () => m.memPageAdd(0x1000n),
      () => m.mrExtend(0x1000n, new Uint8Array(256)),
    ]) {
      expect(op).toThrow(TdMeasurementError);
      try {
        op();
      } catch (e) {
        expect((e as TdMeasurementError).reason).toBe('finalized');
      }
    }
  });

  it('malformed operands fail with reason "operand"', () => {
    const m = new TdMeasurement();
    const cases: [() => void, string][] = [
      [() => m.memPageAdd(0x1800n), 'TDH.MEM.PAGE.ADD'],
      [() => m.memPageAdd(-4096n), 'TDH.MEM.PAGE.ADD'],
      [() => m.memPageAdd(1n << 64n), 'TDH.MEM.PAGE.ADD'],
      [() => m.mrExtend(0x1080n, new Uint8Array(256)), 'TDH.MR.EXTEND'],
      [() => m.mrExtend(0x1100n, new Uint8Array(128)), 'TDH.MR.EXTEND'],
    ];
    for (const [call, op] of cases) {
      let caught: unknown;
      try {
        call();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(TdMeasurementError);
      expect((caught as TdMeasurementError).op).toBe(op);
      expect((caught as TdMeasurementError).reason).toBe('operand');
    }
    // refused operations leave the stream untouched
    expect(hex(m.finalize())).toBe(sha384());
  });
});
