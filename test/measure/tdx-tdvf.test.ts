/**
 * TDVF metadata parsing: section tables of shared/reference/measurement.md 5.3 and 7.1,
 * lookup rules of 2.3/5.3, checks of 5.2 (td-shim) and QEMU hw/i386/tdvf.c, and 5.6 (OVMF_CODE.fd alone).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FirmwareFormatError } from '../../src/measure/errors.js';
import { findOvmfFooterEntry, parseTdvfMetadata, TDX_METADATA_OFFSET_GUID } from '../../src/measure/tdvf.js';

const fixture = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url)));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** fixtures/README.md: pinned by sha256. */
const TINY = fixture('tiny_tdvf.bin');
const BW = fixture('ovmf-bookworm-2022.11-6+deb12u2.fd');

function expectFormatError(call: () => unknown, pattern: RegExp): FirmwareFormatError {
  let caught: unknown;
  try {
    call();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FirmwareFormatError);
  const err = caught as FirmwareFormatError;
  expect(err.name).toBe('FirmwareFormatError');
  expect(err.message).not.toContain('\n');
  expect(err.message).toMatch(pattern);
  return err;
}

const patched = (image: Uint8Array, at: number, bytes: number[]): Uint8Array => {
  const copy = image.slice();
  copy.set(bytes, at);
  return copy;
};
const u32le = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

describe('fixtures are the pinned bytes (fixtures/README.md)', () => {
  it('tiny_tdvf.bin', () => {
    expect(sha256(TINY)).toBe('e3ce7cd21ff4fb3b78affb6236d95576f76059bacff86a64531c19e6b37adece');
  });
  it('Debian bookworm OVMF.fd (BW)', () => {
    expect(sha256(BW)).toBe('7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773');
  });
});

describe('findOvmfFooterEntry (measurement.md 2.3, 7.1)', () => {
  it('finds the TDX metadata offset entry of the tiny image: 0x1FF0', () => {
    const data = findOvmfFooterEntry(TINY, TDX_METADATA_OFFSET_GUID);
    expect(data).toBeDefined();
    expect(Array.from(data!)).toEqual(u32le(0x1ff0));
  });
  it('finds the SEV-ES reset block entry of BW: AP reset EIP 0x80B004', () => {
    const data = findOvmfFooterEntry(BW, '00f771de-1a7e-4fcb-890e-68c77e2fb44e');
    expect(data).toBeDefined();
    expect(new DataView(data!.buffer, data!.byteOffset).getUint32(0, true)).toBe(0x80b004);
  });
  it('returns undefined for an absent GUID or an image without a footer', () => {
    expect(findOvmfFooterEntry(TINY, 'dc886566-984a-4798-a75e-5585a7bf67cc')).toBeUndefined();
    expect(findOvmfFooterEntry(new Uint8Array(4096), TDX_METADATA_OFFSET_GUID)).toBeUndefined();
    expect(findOvmfFooterEntry(new Uint8Array(10), TDX_METADATA_OFFSET_GUID)).toBeUndefined();
  });
});

describe('parseTdvfMetadata: sections', () => {
  it('tiny_tdvf.bin (measurement.md 7.1)', () => {
    const md = parseTdvfMetadata(TINY);
    expect(md.locatedBy).toBe('ovmf-footer');
    expect(md.descriptorOffset).toBe(0x2010);
    expect(md.version).toBe(1);
    expect(md.length).toBe(16 + 3 * 32);
    expect(
      md.sections.map((s) => [
        s.typeName,
        s.dataOffset,
        s.rawDataSize,
        s.memoryAddress,
        s.memoryDataSize,
        s.attributes,
      ]),
    ).toEqual([
      ['BFV', 0, 0x2000, 0xffffc000n, 0x2000n, 0x1],
      ['TempMem', 0, 0, 0x800000n, 0x1000n, 0],
      ['PermMem', 0, 0, 0x900000n, 0x1000n, 0x2],
    ]);
    expect(md.sections.map((s) => [s.mrExtend, s.pageAug])).toEqual([
      [true, false],
      [false, false],
      [false, true],
    ]);
  });

  it('Debian bookworm OVMF.fd (measurement.md 5.3 table)', () => {
    const md = parseTdvfMetadata(BW);
    expect(md.locatedBy).toBe('ovmf-footer');
    expect(md.sections.map((s) => [s.typeName, s.attributes, s.memoryAddress, s.memoryDataSize])).toEqual([
      ['BFV', 0x1, 0xffe20000n, 0x1e0000n],
      ['CFV', 0x0, 0xffe00000n, 0x20000n],
      ['TempMem', 0x0, 0x810000n, 0x10000n],
      ['TempMem', 0x0, 0x80b000n, 0x2000n],
      ['TD_HOB', 0x0, 0x809000n, 0x2000n],
      ['TempMem', 0x0, 0x800000n, 0x6000n],
    ]);
    expect(md.sections[0]!.dataOffset).toBe(0x20000);
    expect(md.sections[1]!.dataOffset).toBe(0);
  });

  it('td-shim images: the u32 at EOF-0x20 points at the descriptor (measurement.md 5.3 fallback)', () => {
    const size = TINY.length;
    // Remove the OVMF footer GUID (EOF-0x30) and store the descriptor offset 0x2010 at EOF-0x20.
    const shim = patched(patched(TINY, size - 0x30, new Array(16).fill(0)), size - 0x20, u32le(0x2010));
    const md = parseTdvfMetadata(shim);
    expect(md.locatedBy).toBe('td-shim-pointer');
    expect(md.descriptorOffset).toBe(0x2010);
    expect(md.sections.map((s) => s.typeName)).toEqual(['BFV', 'TempMem', 'PermMem']);
  });
});

describe('parseTdvfMetadata: errors are one-line FirmwareFormatErrors', () => {
  it('no metadata at all', () => {
    expectFormatError(() => parseTdvfMetadata(new Uint8Array(16384)), /no TDX metadata/);
    expectFormatError(() => parseTdvfMetadata(new Uint8Array(8)), /no TDX metadata/);
  });

  it('only the first part of the image: no footer, so no metadata', () => {
    expectFormatError(() => parseTdvfMetadata(BW.subarray(0, 0x100000)), /no TDX metadata/);
    expectFormatError(() => parseTdvfMetadata(TINY.subarray(0, 0x2000)), /no TDX metadata/);
  });

  it('an OVMF footer table without the TDX entry', () => {
    // Corrupt the GUID of the only entry (just before the 18-byte footer entry, measurement.md 7.1).
    const guidAt = TINY.length - 0x20 - 18 - 16;
    expect(Array.from(TINY.subarray(guidAt, guidAt + 4))).toEqual([0x35, 0x65, 0x7a, 0xe4]);
    expectFormatError(() => parseTdvfMetadata(patched(TINY, guidAt, [0])), /no TDX metadata offset entry/);
  });

  it('the last 4 KiB of an OVMF build: metadata found, BFV outside the file', () => {
    // fixtures/README.md: ovmf_OvmfX64_suffix.bin is the last 4 KiB of an edk2-stable202405 OVMF.fd.
    expectFormatError(
      () => parseTdvfMetadata(fixture('ovmf_OvmfX64_suffix.bin')),
      /section 0 \(BFV\): data 0x[0-9a-f]+\+0x[0-9a-f]+ runs past the end of the 4096-byte file/,
    );
  });

  it('OVMF_CODE.fd alone: the BFV runs past the end of the file (measurement.md 5.6)', () => {
    // OVMF.fd = 128 KiB variable store + OVMF_CODE.fd (1,966,080 bytes, measurement.md 1.2).
    const code = BW.subarray(0x20000);
    expect(code.length).toBe(1_966_080);
    const err = expectFormatError(
      () => parseTdvfMetadata(code, 'OVMF_CODE.fd'),
      /^OVMF_CODE\.fd: section 0 \(BFV\): data 0x20000\+0x1e0000 runs past the end of the 1966080-byte file$/,
    );
    expect(err.file).toBe('OVMF_CODE.fd');
  });

  it('the metadata offset points outside the file', () => {
    const size = TINY.length;
    // The TDX entry's u32 sits just before its u16 length + GUID, i.e. at EOF - 32 - 18 - 18 - 4.
    const at = size - 0x20 - 18 - 18 - 4;
    expect(Array.from(TINY.subarray(at, at + 4))).toEqual(u32le(0x1ff0));
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, at, u32le(0x8000))),
      /points outside the 16384-byte file/,
    );
    expectFormatError(() => parseTdvfMetadata(patched(TINY, at, u32le(0))), /points outside/);
    expectFormatError(() => parseTdvfMetadata(patched(TINY, at, u32le(8))), /points outside/);
  });

  it('bad "TDVF" signature', () => {
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, 0x2010, [0x58])),
      /bad TDVF descriptor signature/,
    );
  });

  it('missing metadata GUID before the descriptor', () => {
    expectFormatError(() => parseTdvfMetadata(patched(TINY, 0x2000, [0])), /no TDX metadata GUID/);
  });

  it('version, section count and length checks (td-shim TdxMetadataDescriptor::is_valid)', () => {
    expectFormatError(() => parseTdvfMetadata(patched(TINY, 0x2018, u32le(2))), /version 2/);
    expectFormatError(() => parseTdvfMetadata(patched(TINY, 0x201c, u32le(0))), /no sections/);
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, 0x2014, u32le(0x60))),
      /length 0x60 does not match 3/,
    );
  });

  it('section checks: type, alignment, RawDataSize <= MemoryDataSize', () => {
    const sec = (i: number, field: number): number => 0x2020 + i * 32 + field;
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, sec(1, 24), u32le(9))),
      /section 1: invalid type 9/,
    );
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, sec(1, 8), u32le(0x800800))),
      /section 1 \(TempMem\): MemoryAddress 0x800800 is not 4 KiB aligned/,
    );
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, sec(1, 16), u32le(0x1800))),
      /MemoryDataSize 0x1800 is not 4 KiB aligned/,
    );
    expectFormatError(() => {
      // MemoryAddress 0xFFFFFFFFFFFFF000 (u64 LE) with MemoryDataSize 0x2000
      const image = patched(TINY, sec(1, 8), [0x00, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      return parseTdvfMetadata(patched(image, sec(1, 16), u32le(0x2000)));
    }, /section 1 \(TempMem\): MemoryAddress 0xfffffffffffff000 \+ 0x2000 wraps past 2\^64/);
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, sec(0, 4), u32le(0x3000))),
      /section 0 \(BFV\): RawDataSize 0x3000 exceeds MemoryDataSize 0x2000/,
    );
    expectFormatError(
      () => parseTdvfMetadata(patched(TINY, sec(0, 0), u32le(0x3000))),
      /section 0 \(BFV\): data 0x3000\+0x2000 runs past the end of the 16384-byte file/,
    );
  });
});
