/**
 * The SNP measurement building blocks, each against the facts of shared/reference/measurement.md:
 * PAGE_INFO chain (§2.1, §3.2), OVMF footer table and SEV metadata (§2.3), VMSA fields (§2.4),
 * vCPU signatures (§2.4; virtee/sev-snp-measure tests/test_vcpu_types.py), kernel-hashes page (§2.5)
 * and the launch order rules (§2.2, §8 item 4).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  SNP_PAGE_TYPE_CPUID,
  SNP_PAGE_TYPE_NORMAL,
  SNP_PAGE_TYPE_SECRETS,
  SNP_PAGE_TYPE_UNMEASURED,
  SNP_PAGE_TYPE_VMSA,
  SNP_PAGE_TYPE_ZERO,
  SNP_VMSA_GPA,
  SnpLaunchDigest,
} from '../../src/kernel/arch/sev/launch-digest.js';
import { guidFromBytes, guidToBytes, OVMF_TABLE_FOOTER_GUID, parseOvmf } from '../../src/measure/ovmf.js';
import { cpuSig, VCPU_TYPE_NAMES, vcpuSigForType } from '../../src/measure/snp/cpu-sig.js';
import { buildSevHashesPage, computeSevHashes } from '../../src/measure/snp/kernel-hashes.js';
import { planSnpLaunch } from '../../src/measure/snp/launch-plan.js';
import { encodeVmsa, vcpuResetState } from '../../src/measure/snp/vmsa.js';
import { buildImage } from './snp-synthetic-image.js';

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const AMDSEV = fixture('ovmf_AmdSev_suffix.bin');
const BW = fixture('ovmf-bookworm-2022.11-6+deb12u2.fd');
const EPYC_V4 = 0x800f12;

/**
 * Expected chain of NORMAL pages at GPAs 0, 4096, ..., computed with createHash, page by page, from
 * the pages as they are when called (callers pass copies where the page changes later).
 */
function chain(pages: Uint8Array[]): string {
  let cur = Buffer.alloc(48);
  pages.forEach((p, i) => {
    const info = Buffer.alloc(0x70);
    cur.copy(info, 0);
    createHash('sha384').update(p).digest().copy(info, 0x30);
    info.writeUInt16LE(0x70, 0x60);
    info[0x62] = SNP_PAGE_TYPE_NORMAL;
    info.writeBigUInt64LE(BigInt(i * 4096), 0x68);
    cur = createHash('sha384').update(info).digest();
  });
  return cur.toString('hex');
}

describe('SnpLaunchDigest (SNP ABI §8.17.2 Table 67; measurement.md §2.1, §3.2)', () => {
  const PAGE1_CONTENTS =
    '161ace084859674ded7322ad102eb33f49457e0f7845a8f9ad0e03a59eac3e3e360f8b78345363feaeac956ebba2d894';
  const LD_AFTER_PAGE1 =
    '086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74';

  it('page types carry the SNP ABI values', () => {
    expect([
      SNP_PAGE_TYPE_NORMAL,
      SNP_PAGE_TYPE_VMSA,
      SNP_PAGE_TYPE_ZERO,
      SNP_PAGE_TYPE_UNMEASURED,
      SNP_PAGE_TYPE_SECRETS,
      SNP_PAGE_TYPE_CPUID,
    ]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(SNP_VMSA_GPA).toBe(0xfffffffff000n);
  });

  it('the worked first PAGE_INFO hashes to the published LD', () => {
    const pageInfo = Buffer.from(
      `${'00'.repeat(48)}${PAGE1_CONTENTS}7000010000000000${'00f0ffff00000000'}`,
      'hex',
    );
    expect(pageInfo).toHaveLength(0x70);
    expect(createHash('sha384').update(pageInfo).digest('hex')).toBe(LD_AFTER_PAGE1);
  });

  it('update() of the fixture page at 0xFFFFF000 gives the published LD', () => {
    const ld = new SnpLaunchDigest();
    expect(hex(ld.digest)).toBe('00'.repeat(48));
    ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 0xfffff000n, contents: AMDSEV });
    expect(hex(ld.digest)).toBe(LD_AFTER_PAGE1);
    expect(ld.updates).toBe(1);
  });

  it('a GPA given as a number gives the published LD too (0xFFFFF000; above 4 GiB as the bigint does)', () => {
    const ld = new SnpLaunchDigest();
    ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 0xfffff000, contents: AMDSEV });
    expect(hex(ld.digest)).toBe(LD_AFTER_PAGE1);
    // The VMSA GPA has bits above 32: both forms must write the same PAGE_INFO.
    const a = new SnpLaunchDigest();
    const b = new SnpLaunchDigest();
    a.update({ pageType: SNP_PAGE_TYPE_ZERO, gpa: 0xfffffffff000 });
    b.update({ pageType: SNP_PAGE_TYPE_ZERO, gpa: 0xfffffffff000n });
    expect(hex(a.digest)).toBe(hex(b.digest));
  });

  it('unmeasured-content pages hash a zero CONTENTS field and their fields', () => {
    const seed = Buffer.alloc(48, 0xab);
    const ld = new SnpLaunchDigest(seed);
    ld.update({ pageType: SNP_PAGE_TYPE_SECRETS, gpa: 0x80d000n, vmpl1Perms: 0x7, imi: true });
    const info = Buffer.alloc(0x70);
    seed.copy(info, 0);
    info.writeUInt16LE(0x70, 0x60);
    info[0x62] = 5;
    info[0x63] = 1;
    info[0x66] = 7;
    info.writeBigUInt64LE(0x80d000n, 0x68);
    expect(hex(ld.digest)).toBe(createHash('sha384').update(info).digest('hex'));
  });

  it('repeated pages, pages changed after update() and pages alike at sampled bytes chain as fresh ones', () => {
    const erased = new Uint8Array(4096).fill(0xff);
    // Same bytes at every position a fingerprint could sample but the middle of a cache line.
    const nearlyErased = new Uint8Array(4096).fill(0xff);
    nearlyErased[100] = 0;
    const mutable = new Uint8Array(4096).fill(0xff);
    mutable[2000] = 7;
    const seen: Uint8Array[] = [];
    const ld = new SnpLaunchDigest();
    const add = (p: Uint8Array): void => {
      seen.push(p.slice());
      ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: (seen.length - 1) * 4096, contents: p });
    };
    add(erased);
    add(mutable); // second page with the erased fingerprint: remembered
    mutable[2000] = 0xff; // now erased: must not be taken for the page it was
    add(mutable);
    add(new Uint8Array(4096).fill(0xff));
    add(nearlyErased);
    add(erased);
    add(nearlyErased);
    expect(hex(ld.digest)).toBe(chain(seen));
  });

  it('a page given as a Buffer and changed afterwards is not taken for its old bytes', () => {
    const page = (fill: number): Buffer => Buffer.alloc(4096, fill);
    const expected = new SnpLaunchDigest();
    const ld = new SnpLaunchDigest();
    const buf = page(0xff);
    buf[2000] = 1;
    for (const [i, p] of [page(0xff), Buffer.from(buf)].entries()) {
      expected.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: i * 4096, contents: new Uint8Array(p) });
    }
    ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 0, contents: page(0xff) });
    ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 4096, contents: buf }); // remembered (same fingerprint)
    buf[2000] = 0xff; // now all 0xff
    expected.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 8192, contents: page(0xff) });
    ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 8192, contents: buf });
    expect(hex(ld.digest)).toBe(hex(expected.digest));
  });

  it('code-like pages (first, middle and last bytes differ), repeated or changed, chain as fresh ones', () => {
    // Such pages skip the repeat memo; the chain must still be the page-by-page one.
    const code = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
    const pages = [code, code, code.map((b) => b ^ 1)];
    const ld = new SnpLaunchDigest();
    pages.forEach((p, i) => {
      ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: i * 4096, contents: p });
    });
    expect(hex(ld.digest)).toBe(chain(pages));
  });

  it('digest is a copy; bad seeds and missing contents are rejected', () => {
    const ld = new SnpLaunchDigest();
    ld.digest.fill(1);
    expect(hex(ld.digest)).toBe('00'.repeat(48));
    expect(() => new SnpLaunchDigest(new Uint8Array(32))).toThrow(RangeError);
    expect(() => ld.update({ pageType: SNP_PAGE_TYPE_VMSA, gpa: SNP_VMSA_GPA })).toThrow(RangeError);
    expect(() =>
      ld.update({ pageType: SNP_PAGE_TYPE_NORMAL, gpa: 0n, contents: new Uint8Array(100) }),
    ).toThrow(RangeError);
  });
});

describe('OVMF footer table and SEV metadata (measurement.md §2.3)', () => {
  it('GUIDs are stored in EFI mixed-endian form', () => {
    const stored = 'de82b596b21ff745baeaa366c55a082d';
    expect(hex(guidToBytes(OVMF_TABLE_FOOTER_GUID))).toBe(stored);
    expect(guidFromBytes(Buffer.from(stored, 'hex'))).toBe(OVMF_TABLE_FOOTER_GUID);
  });

  it('BW (2 MiB) ends at 4 GiB; its SEV metadata, reset EIP and empty hash table', () => {
    const o = parseOvmf(BW);
    expect(o.gpa).toBe(0xffe00000);
    expect(o.sevMetadata).toEqual([
      { gpa: 0x800000, size: 0x9000, type: 1 },
      { gpa: 0x80a000, size: 0x3000, type: 1 },
      { gpa: 0x80d000, size: 0x1000, type: 2 },
      { gpa: 0x80e000, size: 0x1000, type: 3 },
      { gpa: 0x80f000, size: 0x11000, type: 1 },
    ]);
    expect(o.sevEsResetEip).toBe(0x80b004);
    expect(o.sevHashTable).toEqual({ gpa: 0, size: 0 });
    // Entries present in BW per §2.3 (SEV launch-secret block and TDX metadata offset too).
    for (const g of [
      'dc886566-984a-4798-a75e-5585a7bf67cc',
      '00f771de-1a7e-4fcb-890e-68c77e2fb44e',
      '7255371f-3a3b-4b04-927b-1da6efa8d454',
      '4c2eb361-7d9b-4cc3-8081-127c90d3d294',
      'e47a6535-984a-4798-865e-4685a7bf8ec2',
    ]) {
      expect(o.table.has(g)).toBe(true);
    }
  });

  it('AmdSev fixture: kernel-hashes section, SVSM_CAA, reset EIP, hash table at page offset 0xC00', () => {
    const o = parseOvmf(AMDSEV);
    expect(o.gpa).toBe(0xfffff000);
    const sections = o.sevMetadata!;
    expect(sections.find((s) => s.type === 4)).toEqual({ gpa: 0x80f000, size: 0x1000, type: 4 });
    expect(sections.find((s) => s.type === 0x10)).toEqual({ gpa: 0x810000, size: 0x1000, type: 0x10 });
    expect(sections.at(-1)).toEqual({ gpa: 0x811000, size: 0xf000, type: 1 });
    expect(o.sevEsResetEip).toBe(0x80b004);
    expect(o.sevHashTable!.gpa & 0xfff).toBe(0xc00);
  });

  it('an image without the footer GUID has an empty table, not an error', () => {
    const o = parseOvmf(new Uint8Array(4096));
    expect(o.table.size).toBe(0);
    expect(o.sevMetadata).toBeUndefined();
    expect(o.sevEsResetEip).toBeUndefined();
  });
});

describe('vCPU signatures (measurement.md §2.4; sev-snp-measure tests/test_vcpu_types.py)', () => {
  it('encodes family/model/stepping', () => {
    expect(cpuSig(14, 1, 2)).toBe(0x0e12);
    expect(cpuSig(23, 1, 2)).toBe(0x800f12);
  });
  it('names the EPYC models', () => {
    for (const n of ['EPYC', 'EPYC-v1', 'EPYC-v2', 'EPYC-v3', 'EPYC-v4', 'EPYC-IBPB']) {
      expect(vcpuSigForType(n)).toBe(0x800f12);
    }
    for (const n of ['EPYC-Rome', 'EPYC-Rome-v1', 'EPYC-Rome-v2', 'EPYC-Rome-v3']) {
      expect(vcpuSigForType(n)).toBe(0x830f10);
    }
    for (const n of ['EPYC-Milan', 'EPYC-Milan-v1', 'EPYC-Milan-v2'])
      expect(vcpuSigForType(n)).toBe(0xa00f11);
    for (const n of ['EPYC-Genoa', 'EPYC-Genoa-v1']) expect(vcpuSigForType(n)).toBe(0xa10f10);
    expect(vcpuSigForType('EPYC-Turin')).toBe(0xb00f00);
    expect(VCPU_TYPE_NAMES).toHaveLength(16);
    expect(vcpuSigForType('toString')).toBeUndefined();
    expect(vcpuSigForType('EPYC-v5')).toBeUndefined();
  });
});

describe('VMSA (APM vol. 2 Table B-4; measurement.md §2.4)', () => {
  const page = (bsp: boolean, vmmType: 'qemu' | 'ec2' | 'gce') =>
    Buffer.from(
      encodeVmsa(vcpuResetState({ apEip: 0x80b004, vcpuSig: EPYC_V4, vmmType, guestFeatures: 0x21n, bsp })),
    );
  const seg = (b: Buffer, off: number) => [
    b.readUInt16LE(off),
    b.readUInt16LE(off + 2),
    b.readUInt32LE(off + 4),
    b.readBigUInt64LE(off + 8),
  ];

  it('QEMU BSP fields at their offsets', () => {
    const b = page(true, 'qemu');
    expect(b).toHaveLength(4096);
    for (const off of [0x00, 0x30, 0x40, 0x50]) expect(seg(b, off)).toEqual([0, 0x93, 0xffff, 0n]);
    expect(seg(b, 0x10)).toEqual([0xf000, 0x9b, 0xffff, 0xffff0000n]);
    expect(seg(b, 0x20)).toEqual([0, 0x93, 0xffff, 0n]);
    expect(seg(b, 0x60)).toEqual([0, 0, 0xffff, 0n]);
    expect(seg(b, 0x80)).toEqual([0, 0, 0xffff, 0n]);
    expect(seg(b, 0x70)).toEqual([0, 0x82, 0xffff, 0n]);
    expect(seg(b, 0x90)).toEqual([0, 0x8b, 0xffff, 0n]);
    const q = (off: number) => b.readBigUInt64LE(off);
    expect([q(0xd0), q(0x148), q(0x158), q(0x160), q(0x168), q(0x170), q(0x178)]).toEqual([
      0x1000n,
      0x40n,
      0x10n,
      0x400n,
      0xffff0ff0n,
      0x2n,
      0xfff0n,
    ]);
    expect(q(0x268)).toBe(0x0007040600070406n);
    expect(q(0x310)).toBe(0x800f12n);
    expect(q(0x3b0)).toBe(0x21n);
    expect(q(0x3e8)).toBe(0x1n);
    expect(b.readUInt32LE(0x408)).toBe(0x1f80);
    expect(b.readUInt16LE(0x410)).toBe(0x037f);
  });

  it('QEMU AP starts at the reset block EIP; everything else is identical', () => {
    const bsp = page(true, 'qemu');
    const ap = page(false, 'qemu');
    expect(seg(ap, 0x10)).toEqual([0xf000, 0x9b, 0xffff, 0x800000n]);
    expect(ap.readBigUInt64LE(0x178)).toBe(0xb004n);
    bsp.fill(0, 0x10, 0x20).fill(0, 0x178, 0x180);
    ap.fill(0, 0x10, 0x20).fill(0, 0x178, 0x180);
    expect(ap.equals(bsp)).toBe(true);
  });

  it('ec2: CS 0x9A for the BSP only, SS 0x92, TR 0x83, RDX 0x600, no MXCSR/FCW', () => {
    const bsp = page(true, 'ec2');
    const ap = page(false, 'ec2');
    expect(bsp.readUInt16LE(0x12)).toBe(0x9a);
    expect(ap.readUInt16LE(0x12)).toBe(0x9b);
    for (const b of [bsp, ap]) {
      expect(b.readUInt16LE(0x22)).toBe(0x92);
      expect(b.readUInt16LE(0x92)).toBe(0x83);
      expect(b.readBigUInt64LE(0x310)).toBe(0x600n);
      expect(b.readUInt32LE(0x408)).toBe(0);
      expect(b.readUInt16LE(0x410)).toBe(0);
    }
  });

  it('gce: G_PAT 0x00070106, RDX 0x600, no MXCSR/FCW', () => {
    const b = page(true, 'gce');
    expect(b.readBigUInt64LE(0x268)).toBe(0x00070106n);
    expect(b.readBigUInt64LE(0x310)).toBe(0x600n);
    expect(b.readUInt32LE(0x408)).toBe(0);
    expect(b.readUInt16LE(0x410)).toBe(0);
    expect(b.readUInt16LE(0x12)).toBe(0x9b);
  });
});

describe('kernel-hashes page (QEMU sev_add_kernel_loader_hashes; measurement.md §2.5)', () => {
  const WORKED =
    '06d63894224fc94cb479a793d411fd21a800d82dd09720bd944caa78e7714d36ab2a3200321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a31f7ba442f3ad74b9af141e29169781d3200e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8553794e74dd2ab7f42b835d5b172d2045b3200e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550000000000000000';
  const empty = new Uint8Array(0);

  it('the worked table sits at 0xC00 in an otherwise zero page', () => {
    const hashes = computeSevHashes({ kernel: empty, initrd: empty, append: 'console=ttyS0 loglevel=7' });
    const p = Buffer.from(buildSevHashesPage(hashes, 0xc00));
    expect(p).toHaveLength(4096);
    expect(hex(p.subarray(0xc00, 0xc00 + 176))).toBe(WORKED);
    expect(p.subarray(0, 0xc00).every((x) => x === 0)).toBe(true);
    expect(p.subarray(0xc00 + 176).every((x) => x === 0)).toBe(true);
  });

  it('the launch plan measures that page as NORMAL at the section GPA', () => {
    const plan = planSnpLaunch(AMDSEV, {
      vcpus: 1,
      vcpuSig: EPYC_V4,
      kernel: empty,
      initrd: empty,
      append: 'console=ttyS0 loglevel=7',
    });
    const u = plan.updates.find((x) => x.gpa === 0x810000n)!;
    expect(u.pageType).toBe(SNP_PAGE_TYPE_NORMAL);
    expect(hex(u.contents!.subarray(0xc00, 0xc00 + 176))).toBe(WORKED);
  });

  it('without a kernel the section is ZERO pages', () => {
    const plan = planSnpLaunch(AMDSEV, { vcpus: 1, vcpuSig: EPYC_V4 });
    const u = plan.updates.find((x) => x.gpa === 0x810000n)!;
    expect(u.pageType).toBe(SNP_PAGE_TYPE_ZERO);
    expect(u.contents).toBeUndefined();
  });

  it('rejects a table that does not fit its page', () => {
    const hashes = computeSevHashes({ kernel: empty });
    expect(() => buildSevHashesPage(hashes, 4096 - 175)).toThrow(RangeError);
  });
});

describe('launch order (measurement.md §2.2, §8 item 4)', () => {
  const types = (opts: Parameters<typeof planSnpLaunch>[1], image: Uint8Array = AMDSEV) =>
    planSnpLaunch(image, opts)
      .regions.filter((r) => r.source === 'metadata')
      .map((r) => [r.pageType, r.gpa, r.size]);

  it('QEMU: sections in table order, one firmware region first, VMSAs last', () => {
    const plan = planSnpLaunch(AMDSEV, { vcpus: 3, vcpuSig: EPYC_V4 });
    expect(plan.regions.map((r) => r.source)).toEqual([
      'firmware',
      ...Array(7).fill('metadata'),
      'vmsa',
      'vmsa',
      'vmsa',
    ]);
    expect(types({ vcpus: 1, vcpuSig: EPYC_V4 })).toEqual([
      [SNP_PAGE_TYPE_ZERO, 0x800000n, 0x9000],
      [SNP_PAGE_TYPE_ZERO, 0x80a000n, 0x3000],
      [SNP_PAGE_TYPE_SECRETS, 0x80d000n, 0x1000],
      [SNP_PAGE_TYPE_CPUID, 0x80e000n, 0x1000],
      [SNP_PAGE_TYPE_ZERO, 0x80f000n, 0x1000],
      [SNP_PAGE_TYPE_ZERO, 0x810000n, 0x1000],
      [SNP_PAGE_TYPE_ZERO, 0x811000n, 0xf000],
    ]);
    expect(plan.vcpus).toHaveLength(3);
    expect(plan.regions.filter((r) => r.source === 'vmsa').map((r) => r.vcpu)).toEqual([0, 1, 2]);
  });

  it('ec2 moves the CPUID page after all other sections', () => {
    const t = types({ vcpus: 1, vmmType: 'ec2' });
    expect(t.at(-1)).toEqual([SNP_PAGE_TYPE_CPUID, 0x80e000n, 0x1000]);
    expect(t.filter((x) => x[0] === SNP_PAGE_TYPE_CPUID)).toHaveLength(1);
  });

  it('gce measures SNP_SEC_MEM as UNMEASURED (SVSM_CAA stays ZERO)', () => {
    const t = types({ vcpus: 1, vmmType: 'gce' });
    expect(t[0]).toEqual([SNP_PAGE_TYPE_UNMEASURED, 0x800000n, 0x9000]);
    expect(t[4]).toEqual([SNP_PAGE_TYPE_ZERO, 0x80f000n, 0x1000]);
  });

  it('keeps table order when it is not GPA order; SECRETS/CPUID are one page; empty sections add nothing', () => {
    const image = buildImage({
      sections: [
        { gpa: 0x900000, size: 0x2000, type: 1 },
        { gpa: 0x800000, size: 0, type: 2 },
        { gpa: 0x700000, size: 0x3000, type: 3 },
        { gpa: 0x600000, size: 0, type: 1 },
        { gpa: 0x500000, size: 0, type: 4 },
        { gpa: 0x400000, size: 0, type: 0x10 },
      ],
    });
    const plan = planSnpLaunch(image, { vcpus: 1, vcpuSig: EPYC_V4 });
    const meta = plan.updates.filter((u) => plan.regions[u.region]!.source === 'metadata');
    expect(meta.map((u) => [u.pageType, u.gpa])).toEqual([
      [SNP_PAGE_TYPE_ZERO, 0x900000n],
      [SNP_PAGE_TYPE_ZERO, 0x901000n],
      [SNP_PAGE_TYPE_SECRETS, 0x800000n],
      [SNP_PAGE_TYPE_CPUID, 0x700000n],
    ]);
  });

  it('plans the firmware as views of the image, page by page in increasing GPA', () => {
    const plan = planSnpLaunch(BW, { mode: 'snp:ovmf-hash' });
    expect(plan.updates).toHaveLength(512);
    expect(plan.updates[0]!.gpa).toBe(0xffe00000n);
    expect(plan.updates[511]!.gpa).toBe(0xfffff000n);
    expect(plan.updates[1]!.contents!.buffer).toBe(BW.buffer);
  });
});
