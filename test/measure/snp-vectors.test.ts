/**
 * SEV-SNP launch digests against every published vector of shared/reference/measurement.md:
 * §3 (sev-snp-measure runs S1-S7 on the Debian 12 OVMF image BW), §3.2 (worked example on the
 * AmdSev fixture), §4.1 (virtee/sev-snp-measure tests/test_guest.py) and §4.2 (virtee/sev crate,
 * EC2 with RDX 0). The SEV and SEV-ES rows of §4.1 are checked by composing the same building
 * blocks (kernel hashes table, VMSA encoder) into their SHA-256 as §2.6 describes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FirmwareFormatError } from '../../src/measure/errors.js';
import { parseOvmf } from '../../src/measure/ovmf.js';
import { vcpuSigForType } from '../../src/measure/snp/cpu-sig.js';
import { computeSevHashes, encodeSevHashTable } from '../../src/measure/snp/kernel-hashes.js';
import { planSnpLaunch, type SnpMeasureOptions } from '../../src/measure/snp/launch-plan.js';
import { encodeVmsa, vcpuResetState } from '../../src/measure/snp/vmsa.js';
import { computeSnpDigestFromPlan } from './fold-plan.js';

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const AMDSEV = fixture('ovmf_AmdSev_suffix.bin');
const OVMFX64 = fixture('ovmf_OvmfX64_suffix.bin');
const BW = fixture('ovmf-bookworm-2022.11-6+deb12u2.fd');

/** "kern" in measurement.md §4.1: kernel=/dev/null, initrd=/dev/null. */
const EMPTY = new Uint8Array(0);
const EPYC_V4 = vcpuSigForType('EPYC-v4')!;

const digest = (image: Uint8Array, opts: SnpMeasureOptions): string =>
  hex(computeSnpDigestFromPlan(planSnpLaunch(image, opts)));

describe('fixtures (shared/fixtures/README.md)', () => {
  it('are the pinned files', () => {
    expect(sha256(AMDSEV)).toBe('8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c');
    expect(sha256(OVMFX64)).toBe('b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da');
    expect(sha256(BW)).toBe('7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773');
  });
});

describe('sev-snp-measure reference runs on BW (measurement.md §3)', () => {
  const S1 =
    '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3';
  const S5 =
    'ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6';

  it('S1: --vcpus 1 --vcpu-type EPYC-v4', () => {
    expect(digest(BW, { vcpus: 1, vcpuSig: EPYC_V4 })).toBe(S1);
  });
  it('S2: --vcpus 4 --vcpu-type EPYC-v4', () => {
    expect(digest(BW, { vcpus: 4, vcpuSig: EPYC_V4 })).toBe(
      '32ac9d7a17d28f7cd4404a4516d2f00519668c40ada2062351c36767e908eb3f090d66c33ab10f80150e00a4385b6d0f',
    );
  });
  it('S3: --vcpus 1 --vcpu-type EPYC-v4 --guest-features 0x21', () => {
    expect(digest(BW, { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n })).toBe(
      'c32245cb607f82791b60757bf0b344d9030e5b5a107342e69c09e668ff28aca5af9ca1dc41ce74f5a4e81aeaeb5e7b54',
    );
  });
  it('S4: --vcpus 4 --vcpu-type EPYC-Milan', () => {
    expect(digest(BW, { vcpus: 4, vcpuSig: vcpuSigForType('EPYC-Milan')! })).toBe(
      'e9c10ab98f8086bf4a4993dcdc1f768b1128bcb02301d1791f1d3274329e790db2d12a301d66d99a462a13b5d87e2840',
    );
  });
  it('S5: --mode snp:ovmf-hash', () => {
    expect(digest(BW, { mode: 'snp:ovmf-hash' })).toBe(S5);
  });
  it('S6: S1 seeded with the S5 hash equals S1', () => {
    expect(digest(BW, { vcpus: 1, vcpuSig: EPYC_V4, ovmfHash: Buffer.from(S5, 'hex') })).toBe(S1);
  });
  it('S7: a kernel with an image that has no kernel-hashes section is an error', () => {
    const run = () =>
      planSnpLaunch(BW, {
        vcpus: 1,
        vcpuSig: EPYC_V4,
        kernel: EMPTY,
        initrd: EMPTY,
        append: 'console=ttyS0',
      });
    expect(run).toThrow(FirmwareFormatError);
    expect(run).toThrow(/^Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section$/);
  });
});

describe('worked example on the AmdSev fixture (measurement.md §3.2)', () => {
  const plan = planSnpLaunch(AMDSEV, {
    vcpus: 2,
    vcpuSig: EPYC_V4,
    kernel: EMPTY,
    initrd: EMPTY,
    append: 'console=ttyS0 loglevel=7',
  });

  it('measures 1 firmware page, 31 metadata pages, then BSP and AP VMSAs', () => {
    expect(plan.updates).toHaveLength(34);
    expect(plan.updates[0]!.gpa).toBe(0xfffff000n);
    const vmsas = plan.updates.slice(32);
    expect(vmsas.map((u) => [u.pageType, u.gpa])).toEqual([
      [2, 0xfffffffff000n],
      [2, 0xfffffffff000n],
    ]);
  });
  it('VMSA page hashes (BSP at 0xFFFFFFF0, AP at reset-block EIP 0x80B004)', () => {
    const h = (b: Uint8Array | undefined): string => createHash('sha384').update(b!).digest('hex');
    expect(h(plan.updates[32]!.contents)).toBe(
      '77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd4739488058a8c6cb1a77b3856f55378e9518d0da99452d51c553a',
    );
    expect(h(plan.updates[33]!.contents)).toBe(
      '8413b852790765a310d95867a8b00bfca3a802b5a80830044b45e253fe96222657e11e53fcf63eb0e0afd722385bf7b4',
    );
  });
  it('final digest', () => {
    expect(hex(computeSnpDigestFromPlan(plan))).toBe(
      '3b19810237c822c8093beb6acb50c78e3c3b0289ba07c1c8a245d68168bb6f017063252c57a7192e214bfe2f105fe6ad',
    );
  });
});

describe('virtee/sev-snp-measure tests/test_guest.py (measurement.md §4.1)', () => {
  const OVMF_HASH =
    '086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74';
  const kern = (append: string): SnpMeasureOptions => ({ kernel: EMPTY, initrd: EMPTY, append });
  const cases: Array<[string, Uint8Array, SnpMeasureOptions, string]> = [
    [
      'AmdSev, 1 vCPU, 0x21, kern, append "console=ttyS0 loglevel=7"',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n, ...kern('console=ttyS0 loglevel=7') },
      '803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977',
    ],
    [
      'same, 0x1',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x1n, ...kern('console=ttyS0 loglevel=7') },
      '6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa',
    ],
    [
      'AmdSev, 1 vCPU, 0x21, kern, append ""',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n, ...kern('') },
      '329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198',
    ],
    [
      'same, 0x1',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x1n, ...kern('') },
      'ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5',
    ],
    [
      'AmdSev, 1 vCPU, 0x21, no kernel',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n },
      'e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b',
    ],
    [
      'same, 0x1',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x1n },
      '19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d',
    ],
    [
      'AmdSev, 4 vCPU, 0x21, kern, append ""',
      AMDSEV,
      { vcpus: 4, vcpuSig: EPYC_V4, guestFeatures: 0x21n, ...kern('') },
      '4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942',
    ],
    [
      'same, 0x1',
      AMDSEV,
      { vcpus: 4, vcpuSig: EPYC_V4, guestFeatures: 0x1n, ...kern('') },
      '5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5',
    ],
    [
      'AmdSev, ec2, 1 vCPU, 0x21, kern',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, vmmType: 'ec2', guestFeatures: 0x21n, ...kern('') },
      '0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb',
    ],
    [
      'same, 0x1',
      AMDSEV,
      { vcpus: 1, vcpuSig: EPYC_V4, vmmType: 'ec2', guestFeatures: 0x1n, ...kern('') },
      '0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056',
    ],
    [
      'AmdSev, gce, 1 vCPU, 0x1, kern (no vCPU signature)',
      AMDSEV,
      { vcpus: 1, vmmType: 'gce', guestFeatures: 0x1n, ...kern('') },
      '5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e',
    ],
    [
      'AmdSev, gce, 4 vCPU, 0x1, kern (no vCPU signature)',
      AMDSEV,
      { vcpus: 4, vmmType: 'gce', guestFeatures: 0x1n, ...kern('') },
      '5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d',
    ],
    [
      'OvmfX64, 1 vCPU, 0x21, no kernel',
      OVMFX64,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n },
      '28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385',
    ],
    [
      'same, 0x1',
      OVMFX64,
      { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x1n },
      'da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005',
    ],
  ];
  for (const [name, image, opts, expected] of cases) {
    it(`SNP: ${name}`, () => {
      expect(digest(image, opts)).toBe(expected);
    });
  }

  it('OVMF hash of the AmdSev fixture (snp:ovmf-hash)', () => {
    expect(digest(AMDSEV, { mode: 'snp:ovmf-hash' })).toBe(OVMF_HASH);
  });
  it('seeded with the OVMF hash: test_snp_ovmf_hash_gen_default / _feature_snp_only', () => {
    const seed = Buffer.from(OVMF_HASH, 'hex');
    const seeded = (guestFeatures: bigint) =>
      digest(AMDSEV, { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures, ovmfHash: seed, ...kern('') });
    expect(seeded(0x21n)).toBe(
      '329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198',
    );
    expect(seeded(0x1n)).toBe(
      'ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5',
    );
  });
  it('seeded plans skip the firmware pages', () => {
    const plan = planSnpLaunch(AMDSEV, {
      vcpus: 1,
      vcpuSig: EPYC_V4,
      ovmfHash: Buffer.from(OVMF_HASH, 'hex'),
    });
    expect(plan.regions.some((r) => r.source === 'firmware')).toBe(false);
    expect(hex(plan.initialDigest!)).toBe(OVMF_HASH);
  });
  it('OvmfX64 with a kernel fails (test_snp_with_ovmfx64_and_kernel_should_fail)', () => {
    expect(() =>
      planSnpLaunch(OVMFX64, { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n, ...kern('') }),
    ).toThrow(
      new FirmwareFormatError("Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section"),
    );
  });

  // SEV and SEV-ES (§2.6): SHA-256 over the firmware, the padded hashes table (with a kernel) and,
  // for SEV-ES, the VMSA pages with SEV_FEATURES 0. Same table and VMSA builders as SNP.
  const sevLaunchDigest = (image: Uint8Array, table: Uint8Array | undefined, vcpus: number): string => {
    const h = createHash('sha256').update(image);
    if (table) h.update(table);
    const apEip = parseOvmf(image).sevEsResetEip!;
    for (let i = 0; i < vcpus; i++) {
      h.update(
        encodeVmsa(
          vcpuResetState({ apEip, vcpuSig: EPYC_V4, vmmType: 'qemu', guestFeatures: 0n, bsp: i === 0 }),
        ),
      );
    }
    return h.digest('hex');
  };
  const table = (append?: string, initrd?: Uint8Array) =>
    encodeSevHashTable(computeSevHashes({ kernel: EMPTY, initrd, append }));

  it('SEV-ES, AmdSev, 1 vCPU, kern', () => {
    expect(sevLaunchDigest(AMDSEV, table('', EMPTY), 1)).toBe(
      '13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c',
    );
  });
  it('SEV-ES, 4 vCPU (features forced to 0)', () => {
    expect(sevLaunchDigest(AMDSEV, table('', EMPTY), 4)).toBe(
      '0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91',
    );
  });
  it('SEV, AmdSev, kern, append "console=ttyS0 loglevel=7"', () => {
    expect(sevLaunchDigest(AMDSEV, table('console=ttyS0 loglevel=7', EMPTY), 0)).toBe(
      '82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff',
    );
  });
  it('SEV, kernel=/dev/null only', () => {
    expect(sevLaunchDigest(AMDSEV, table(), 0)).toBe(
      '77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898',
    );
  });
  it('SEV, OvmfX64, no kernel', () => {
    expect(sevLaunchDigest(OVMFX64, undefined, 0)).toBe(
      'b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da',
    );
  });
});

describe('virtee/sev crate tests/measurement.rs EC2 (measurement.md §4.2, RDX 0: UNCONFIRMED on hardware)', () => {
  // The crate's EC2 VMSA differs from sev-snp-measure's only in RDX (0 instead of 0x600): rebuild the
  // plan's VMSA pages from edited vCPU states, as the KVM model will do from its registers.
  const crateEc2 = (guestFeatures: bigint): string => {
    const plan = planSnpLaunch(AMDSEV, {
      vcpus: 1,
      vcpuSig: EPYC_V4,
      vmmType: 'ec2',
      guestFeatures,
      kernel: EMPTY,
      initrd: EMPTY,
    });
    for (const u of plan.updates) {
      const vcpu = plan.regions[u.region]!.vcpu;
      if (vcpu !== undefined) u.contents = encodeVmsa({ ...plan.vcpus[vcpu]!, rdx: 0n });
    }
    return hex(computeSnpDigestFromPlan(plan));
  };
  it('features 0x1', () => {
    expect(crateEc2(0x1n)).toBe(
      '7d3756157c805bf6adf617064c8552e8c1688fa1c8756f11cbf56ba5d25c9270fb69c0505c1cbe1c5c66c0e34c6ed3be',
    );
  });
  it('features 0x21', () => {
    expect(crateEc2(0x21n)).toBe(
      '6ae80856486b1396af8c82a40351d6ed76a20c785e9c7fa4ffa27c22d5d6313b4b3b458cd3c9968e6f89fb5d8450d7a6',
    );
  });
});
