/**
 * Images an SNP launch cannot use, and the one-line errors they give. Messages follow
 * virtee/sev-snp-measure (guest.py, ovmf.py: "Kernel specified but OVMF metadata doesn't include
 * SNP_KERNEL_HASHES section", "Wrong SEV metadata signature", "Invalid entry size", "Can't find ...")
 * and QEMU target/i386/sev.c sev_snp_launch_finish() ("Failed to locate SEV metadata header").
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FirmwareFormatError } from '../../src/measure/errors.js';
import { parseOvmf } from '../../src/measure/ovmf.js';
import { planSnpLaunch, type SnpMeasureOptions } from '../../src/measure/snp/launch-plan.js';
import { buildImage } from './snp-synthetic-image.js';

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url));

const AMDSEV = fixture('ovmf_AmdSev_suffix.bin');
const OVMFX64 = fixture('ovmf_OvmfX64_suffix.bin');
const BW = fixture('ovmf-bookworm-2022.11-6+deb12u2.fd');
const EMPTY = new Uint8Array(0);
const SNP: SnpMeasureOptions = { vcpus: 1, vcpuSig: 0x800f12 };

/** Asserts a FirmwareFormatError with exactly this one-line message and file name. */
function expectFormatError(run: () => unknown, message: string | RegExp, file?: string): void {
  let caught: unknown;
  try {
    run();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FirmwareFormatError);
  const err = caught as FirmwareFormatError;
  expect(err.name).toBe('FirmwareFormatError');
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
  expect(err.message).not.toContain('\n');
  expect(err.file).toBe(file);
}

describe('kernel given for an image without a kernel-hashes section', () => {
  const MSG = "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section";
  it('OvmfX64 fixture (sev-snp-measure test_snp_with_ovmfx64_and_kernel_should_fail)', () => {
    expectFormatError(() => planSnpLaunch(OVMFX64, { ...SNP, kernel: EMPTY, initrd: EMPTY }), MSG);
    // the file name is carried when given
    expectFormatError(
      () => planSnpLaunch(OVMFX64, { ...SNP, kernel: EMPTY, file: 'OVMF.fd' }),
      MSG,
      'OVMF.fd',
    );
  });
  it('BW (measurement.md §3 S7), also for ec2 and gce', () => {
    for (const vmmType of ['qemu', 'ec2', 'gce'] as const) {
      expectFormatError(
        () => planSnpLaunch(BW, { ...SNP, vmmType, kernel: EMPTY, append: 'console=ttyS0' }),
        MSG,
      );
    }
  });
  it('a kernel-hashes section but no SEV hash-table entry', () => {
    const image = buildImage({ sections: [{ gpa: 0x810000, size: 0x1000, type: 0x10 }] });
    expectFormatError(
      () => planSnpLaunch(image, { ...SNP, kernel: EMPTY }),
      "Can't find SEV_HASH_TABLE_RV_GUID entry in OVMF table",
    );
    // without a kernel the same image launches
    expect(planSnpLaunch(image, SNP).updates).toHaveLength(2 + 1 + 1);
  });
});

describe('image without SEV metadata', () => {
  const MSG =
    'Failed to locate SEV metadata header (no dc886566-984a-4798-a75e-5585a7bf67cc entry in the OVMF footer table)';
  it('no footer table at all', () => {
    expectFormatError(() => planSnpLaunch(new Uint8Array(0x2000), SNP), MSG);
  });
  it('a footer table with only a reset block (like OVMF_CODE_4M.fd, measurement.md §1.2)', () => {
    const image = buildImage({});
    expect(parseOvmf(image).sevEsResetEip).toBe(0x80b004);
    expectFormatError(() => planSnpLaunch(image, SNP), MSG);
  });
  it('snp:ovmf-hash does not need it', () => {
    expect(planSnpLaunch(buildImage({}), { mode: 'snp:ovmf-hash' }).updates).toHaveLength(2);
  });
  it('no SEV-ES reset block', () => {
    const image = buildImage({ sections: [], resetEip: null });
    expectFormatError(
      () => planSnpLaunch(image, SNP),
      "Can't find SEV_ES_RESET_BLOCK_GUID entry in OVMF table",
    );
  });
});

describe('truncated or malformed image', () => {
  it('BW cut to its first MiB has lost its footer table', () => {
    expectFormatError(
      () => planSnpLaunch(BW.subarray(0, 1 << 20), SNP),
      /^Failed to locate SEV metadata header/,
    );
  });
  it('an image that is not whole pages', () => {
    const MSG = 'OVMF image size 4000 is not a non-zero multiple of 4096 below 4 GiB';
    expectFormatError(() => planSnpLaunch(AMDSEV.subarray(96), SNP), MSG);
    expectFormatError(() => planSnpLaunch(AMDSEV.subarray(96), { mode: 'snp:ovmf-hash' }), MSG);
    expectFormatError(
      () => planSnpLaunch(EMPTY, { mode: 'snp:ovmf-hash' }),
      'OVMF image size 0 is not a non-zero multiple of 4096 below 4 GiB',
    );
  });
  it('the tail of the fixture: SEV metadata header before the image start', () => {
    // The AmdSev fixture's metadata header is 0x554 bytes from the end (its table entry).
    expectFormatError(
      () => parseOvmf(AMDSEV.subarray(4096 - 0x400)),
      'SEV metadata offset 0x554 is outside the image',
    );
  });
  it('the last 100 bytes: the footer table extends before the image start', () => {
    expectFormatError(
      () => parseOvmf(AMDSEV.subarray(4096 - 100), { file: 'tail.bin' }),
      'OVMF footer table (118 bytes) extends before the start of the image',
      'tail.bin',
    );
  });
  it('an entry length below the 18-byte header (sev-snp-measure "Invalid entry size")', () => {
    const image = Buffer.from(buildImage({ sections: [] }));
    // The last entry before the footer is the reset block: its u16 length is 18 + 4 + 18 bytes from the end.
    const lengthAt = image.length - 32 - 18 - 18;
    expect(image.readUInt16LE(lengthAt)).toBe(22);
    image.writeUInt16LE(5, lengthAt);
    expectFormatError(() => parseOvmf(image), 'Invalid entry size 5 in OVMF footer table');
  });
  it('a wrong SEV metadata signature or version', () => {
    expectFormatError(
      () => parseOvmf(buildImage({ sections: [], signature: 'XSEV' })),
      'Wrong SEV metadata signature',
    );
    expectFormatError(
      () => parseOvmf(buildImage({ sections: [], version: 2 })),
      'Wrong SEV metadata version',
    );
  });
  it('an unknown section type, a misaligned or odd-sized section', () => {
    expectFormatError(
      () => planSnpLaunch(buildImage({ sections: [{ gpa: 0x800000, size: 0x1000, type: 7 }] }), SNP),
      'unknown OVMF metadata section type in SEV metadata section 0 (type 0x7, gpa 0x800000, size 0x1000)',
    );
    expectFormatError(
      () => planSnpLaunch(buildImage({ sections: [{ gpa: 0x800800, size: 0x1000, type: 1 }] }), SNP),
      'SEV metadata section 0 (SNP_SEC_MEM, gpa 0x800800, size 0x1000) is not page aligned',
    );
    expectFormatError(
      () => planSnpLaunch(buildImage({ sections: [{ gpa: 0x800000, size: 0x1800, type: 1 }] }), SNP),
      'SEV metadata section 0 (SNP_SEC_MEM, gpa 0x800000, size 0x1800) size is not a multiple of 4096',
    );
  });
});

describe('inconsistent options are RangeErrors, not firmware errors', () => {
  it.each<[string, SnpMeasureOptions]>([
    ['no vCPU count', { vcpuSig: 0x800f12 }],
    ['a negative vCPU count (the CLI maps it to 0, as range() does)', { vcpus: -1, vcpuSig: 0x800f12 }],
    ['qemu without a vCPU signature', { vcpus: 1 }],
    ['initrd without kernel', { ...SNP, initrd: EMPTY }],
    ['a short OVMF hash', { ...SNP, ovmfHash: new Uint8Array(47) }],
  ])('%s', (_name, opts) => {
    expect(() => planSnpLaunch(AMDSEV, opts)).toThrow(RangeError);
  });
});
