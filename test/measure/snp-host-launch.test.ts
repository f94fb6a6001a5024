/**
 * SEV-SNP digests through the HOST path: QEMU's launch run against a modelled 'snp' host, the digest
 * read from the modelled PSP (measure/snp/launch.ts), and through `gmemlab measure snp` (main()).
 * Expected values: sev-snp-measure runs and published vectors in shared/reference/measurement.md
 * §3 (S1-S7 on the Debian 12 OVMF image BW), §3.2 and §4.1 (virtee/sev-snp-measure tests/test_guest.py).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/measure-snp.js';
import { vcpuSigForType } from '../../src/measure/snp/cpu-sig.js';
import { runSnpLaunch } from '../../src/measure/snp/launch.js';
import { planSnpLaunch, type SnpMeasureOptions } from '../../src/measure/snp/launch-plan.js';
import { type CapturedOutput, captureOutput } from './capture-output.js';

const fixturePath = (name: string): string =>
  new URL(`../../../shared/fixtures/${name}`, import.meta.url).pathname;
const BW_PATH = fixturePath('ovmf-bookworm-2022.11-6+deb12u2.fd');
const AMDSEV_PATH = fixturePath('ovmf_AmdSev_suffix.bin');
const OVMFX64_PATH = fixturePath('ovmf_OvmfX64_suffix.bin');
const BW = readFileSync(BW_PATH);
const AMDSEV = readFileSync(AMDSEV_PATH);
const OVMFX64 = readFileSync(OVMFX64_PATH);
const EMPTY = new Uint8Array(0);
const EPYC_V4 = vcpuSigForType('EPYC-v4')!;

const S1 = '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3';
const S5 = 'ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6';

const viaHost = (image: Uint8Array, opts: SnpMeasureOptions, kernel = 'v7.0', invariants = false): string =>
  Buffer.from(runSnpLaunch(planSnpLaunch(image, opts), { kernel, invariants }).digest).toString('hex');

describe('host path: measurement.md §3 reference runs on BW', () => {
  it.each(['v6.11-rc1', 'v6.11', 'v6.16', 'v6.19', 'v7.0'])(
    'S1 (--vcpus 1 --vcpu-type EPYC-v4) on %s, invariants checked',
    (k) => {
      expect(viaHost(BW, { vcpus: 1, vcpuSig: EPYC_V4 }, k, true)).toBe(S1);
    },
  );
  it('S2: --vcpus 4 --vcpu-type EPYC-v4', () => {
    expect(viaHost(BW, { vcpus: 4, vcpuSig: EPYC_V4 })).toBe(
      '32ac9d7a17d28f7cd4404a4516d2f00519668c40ada2062351c36767e908eb3f090d66c33ab10f80150e00a4385b6d0f',
    );
  });
  it('S3: --guest-features 0x21 (KVM_SEV_INIT2 vmsa_features = DebugSwap)', () => {
    expect(viaHost(BW, { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n })).toBe(
      'c32245cb607f82791b60757bf0b344d9030e5b5a107342e69c09e668ff28aca5af9ca1dc41ce74f5a4e81aeaeb5e7b54',
    );
  });
  it('S4: --vcpus 4 --vcpu-type EPYC-Milan', () => {
    expect(viaHost(BW, { vcpus: 4, vcpuSig: vcpuSigForType('EPYC-Milan')! })).toBe(
      'e9c10ab98f8086bf4a4993dcdc1f768b1128bcb02301d1791f1d3274329e790db2d12a301d66d99a462a13b5d87e2840',
    );
  });
  it('S5: --mode snp:ovmf-hash (the guest context digest after the firmware pages)', () => {
    expect(viaHost(BW, { mode: 'snp:ovmf-hash' })).toBe(S5);
  });
  it('S6: S1 seeded with the S5 hash equals S1', () => {
    expect(viaHost(BW, { vcpus: 1, vcpuSig: EPYC_V4, ovmfHash: Buffer.from(S5, 'hex') })).toBe(S1);
  });
});

describe('host path: guest features are what KVM_SEV_INIT2 accepts', () => {
  // Expected digests: virtee/sev-snp-measure at 8f2b337e, run on BW as
  // `sev-snp-measure.py --mode snp --vcpus 2 --vcpu-type EPYC-Genoa --guest-features F [--vmm-type T] --ovmf BW`.
  const GENOA = vcpuSigForType('EPYC-Genoa')!;
  it.each([
    [
      '0x201 (Secure TSC)',
      0x201n,
      'qemu',
      '90f97b2d138a059ed5c96ef0e5eda9121dcf219dcf303d3417ee931a563ad9efc85bc1c7697f2d02d322a3be8f71dfc2',
    ],
    [
      '0x221 (Secure TSC + DebugSwap)',
      0x221n,
      'qemu',
      '2100de529bb0f73aa7fd8d5d79a293b557b2ec95c3812b172d074b3283bdf2249f7994e38052196a34663fda24f0b294',
    ],
    [
      '0x221, gce',
      0x221n,
      'gce',
      'a28dad6fe95ddcdd19f67a10a91f2e932e83180ad2f0a8b98314f3d985b89f39db98b3872dd0f992924917c04c65e083',
    ],
    [
      '0x221, ec2',
      0x221n,
      'ec2',
      '8841a77d3743a910a9a4c4ce9a7df3a54087e3f94ccedbb08c0cb38d44fb194145948242edc5f1265dc4e5350913bc00',
    ],
  ] as const)('%s equals sev-snp-measure from 6.18 on', (_name, guestFeatures, vmmType, want) => {
    for (const k of ['v6.18', 'v7.0']) {
      expect(viaHost(BW, { vcpus: 2, vcpuSig: GENOA, guestFeatures, vmmType }, k)).toBe(want);
    }
  });
  it('Secure TSC before 6.18: KVM_SEV_INIT2 refuses vmsa_features 0x200 (sev_supported_vmsa_features)', () => {
    expect(() => viaHost(BW, { vcpus: 2, vcpuSig: GENOA, guestFeatures: 0x221n }, 'v6.16')).toThrow(
      'KVM_SEV_INIT2: KVM_MEMORY_ENCRYPT_OP: EINVAL (__sev_guest_init: vmsa_features 0x220 not supported)',
    );
  });
  it('vTOM (0x3) is offered by no upstream KVM: sev-snp-measure prints a digest no KVM guest can report', () => {
    expect(() => viaHost(BW, { vcpus: 2, vcpuSig: GENOA, guestFeatures: 0x3n })).toThrow(
      '__sev_guest_init: vmsa_features 0x2 not supported',
    );
  });
});

describe('host path: measurement.md §4.1 vectors (sev-snp-measure tests/test_guest.py)', () => {
  const kern = { kernel: EMPTY, initrd: EMPTY };
  it.each([
    [
      'AmdSev 1 vCPU 0x21 kern append',
      { vcpus: 1, guestFeatures: 0x21n, ...kern, append: 'console=ttyS0 loglevel=7' },
      '803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977',
    ],
    [
      'AmdSev 1 vCPU 0x1 kern append ""',
      { vcpus: 1, ...kern, append: '' },
      'ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5',
    ],
    [
      'AmdSev 1 vCPU 0x1 no kernel',
      { vcpus: 1 },
      '19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d',
    ],
    [
      'AmdSev 4 vCPU 0x21 kern append ""',
      { vcpus: 4, guestFeatures: 0x21n, ...kern, append: '' },
      '4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942',
    ],
    [
      'AmdSev ec2 1 vCPU 0x21 kern',
      { vcpus: 1, vmmType: 'ec2', guestFeatures: 0x21n, ...kern },
      '0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb',
    ],
    [
      'AmdSev gce 4 vCPU 0x1 kern',
      { vcpus: 4, vmmType: 'gce', ...kern },
      '5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d',
    ],
  ] as const)('%s', (_name, opts, want) => {
    expect(viaHost(AMDSEV, { vcpuSig: EPYC_V4, ...opts } as SnpMeasureOptions)).toBe(want);
  });
  it('OvmfX64 1 vCPU 0x21 no kernel', () => {
    expect(viaHost(OVMFX64, { vcpus: 1, vcpuSig: EPYC_V4, guestFeatures: 0x21n })).toBe(
      '28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385',
    );
  });
  it('§3.2: every LD in the trace comes from the PSP; page 1 and the final digest are the published ones', () => {
    const seen: string[] = [];
    const plan = planSnpLaunch(AMDSEV, {
      vcpus: 2,
      vcpuSig: EPYC_V4,
      ...kern,
      append: 'console=ttyS0 loglevel=7',
    });
    const r = runSnpLaunch(plan, { onPage: (p) => seen.push(Buffer.from(p.digest).toString('hex')) });
    expect(seen[0]).toBe(
      '086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74',
    );
    expect(seen).toHaveLength(plan.updates.length);
    // The digest before the two VMSAs (firmware + metadata pages), then after the BSP's VMSA.
    expect(seen.at(-3)).toBe(
      '36fcd572bd473b23cdcce6f078026377e7b2d18ede30fe022d371f062ac1fbd73ba70c6286951b488c864e3ff9392f43',
    );
    expect(seen.at(-2)).toBe(
      '6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa',
    );
    expect(Buffer.from(r.digest).toString('hex')).toBe(
      '3b19810237c822c8093beb6acb50c78e3c3b0289ba07c1c8a245d68168bb6f017063252c57a7192e214bfe2f105fe6ad',
    );
  });
});

describe('gmemlab measure snp main()', () => {
  let io: CapturedOutput = { out: '', err: '' };
  const run = async (args: string[]): Promise<number> => {
    io = captureOutput();
    return main(args);
  };
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('S1 in hex', async () => {
    expect(await run(['--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', BW_PATH])).toBe(0);
    expect(io.out).toBe(`${S1}\n`);
  });
  it('S4 with --vcpu-family/--vcpu-model/--vcpu-stepping (EPYC-Milan = 25/1/1)', async () => {
    expect(
      await run([
        '--mode',
        'snp',
        '--vcpus',
        '4',
        '--vcpu-family',
        '25',
        '--vcpu-model',
        '1',
        '--vcpu-stepping',
        '1',
        '--ovmf',
        BW_PATH,
      ]),
    ).toBe(0);
    expect(io.out.trim()).toBe(
      'e9c10ab98f8086bf4a4993dcdc1f768b1128bcb02301d1791f1d3274329e790db2d12a301d66d99a462a13b5d87e2840',
    );
  });
  it('S5 always in hex (sev-snp-measure cli.py prints calc_snp_ovmf_hash().hex() whatever --output-format says) and S6 with --snp-ovmf-hash', async () => {
    expect(await run(['--mode', 'snp:ovmf-hash', '--ovmf', BW_PATH, '--output-format', 'base64'])).toBe(0);
    expect(io.out).toBe(`${S5}\n`);
    expect(
      await run([
        '--mode',
        'snp',
        '--vcpus',
        '1',
        '--vcpu-sig',
        '0x800f12',
        '--ovmf',
        BW_PATH,
        '--snp-ovmf-hash',
        S5,
      ]),
    ).toBe(0);
    expect(io.out.trim()).toBe(S1);
  });
  it('--kernel/--initrd/--append with --vmm-type gce, and --trace writes one JSON line per page', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gmemlab-snp-'));
    const trace = join(dir, 't.jsonl');
    expect(
      await run([
        '--mode',
        'snp',
        '--vcpus',
        '1',
        '--vmm-type',
        'gce',
        '--ovmf',
        AMDSEV_PATH,
        '--kernel',
        '/dev/null',
        '--initrd',
        '/dev/null',
        '--trace',
        trace,
      ]),
    ).toBe(0);
    expect(io.out.trim()).toBe(
      '5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e',
    );
    const lines = readFileSync(trace, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(
      planSnpLaunch(AMDSEV, { vcpus: 1, vmmType: 'gce', kernel: EMPTY, initrd: EMPTY }).updates.length,
    );
    expect(lines[0]).toMatchObject({
      type: 'SNP_PAGE_TYPE_NORMAL',
      gpa: '0xfffff000',
      contents:
        '161ace084859674ded7322ad102eb33f49457e0f7845a8f9ad0e03a59eac3e3e360f8b78345363feaeac956ebba2d894',
    });
    expect(lines.at(-1)).toMatchObject({
      type: 'SNP_PAGE_TYPE_VMSA',
      gpa: '0xfffffffff000',
      digest: io.out.trim(),
    });
  });
  it('S7: a kernel for an image without SNP_KERNEL_HASHES: one line on stderr, exit 1', async () => {
    expect(
      await run([
        '--mode',
        'snp',
        '--vcpus',
        '1',
        '--vcpu-type',
        'EPYC-v4',
        '--ovmf',
        BW_PATH,
        '--kernel',
        '/dev/null',
        '--append',
        'console=ttyS0',
      ]),
    ).toBe(1);
    expect(io.err).toBe(
      "Error: Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section\n",
    );
    expect(io.out).toBe('');
  });
  it('--guest-features 0x201 (Secure TSC): the default v7.0 profile accepts it (6.18+ sev_supported_vmsa_features); the digest is sev-snp-measure 0.0.13 (8f2b337) --mode snp --vcpus 1 --vcpu-type EPYC-v4 --guest-features 0x201 on BW', async () => {
    const a = [
      '--mode',
      'snp',
      '--vcpus',
      '1',
      '--vcpu-type',
      'EPYC-v4',
      '--ovmf',
      BW_PATH,
      '--guest-features',
      '0x201',
    ];
    expect(await run(a)).toBe(0);
    expect(io.out.trim()).toBe(
      '6050ae227c7eee65b4866511a5a0bf22c44590c894d1d59ed9568f3e4a21737e2dd581f1d439e18eea0fa7f258bafe4d',
    );
  });
  it.each([
    [['--vcpus', '1', '--vcpu-type', 'EPYC-v4'], 2, /--ovmf/],
    [['--vcpus', '1', '--ovmf', 'x'], 2, /vcpu/],
    [['--vcpus', 'two', '--vcpu-type', 'EPYC-v4', '--ovmf', 'x'], 2, /invalid int value/],
    [['--vcpus', '1', '--vcpu-type', 'EPYC-v9', '--ovmf', 'x'], 2, /EPYC-v9/],
    [['--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', '/nonexistent/OVMF.fd'], 1, /ENOENT/],
    [
      [
        ...['--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW', '--guest-features', '0x201'],
        ...['--kernel-profile', 'v6.16'],
      ],
      1,
      /KVM_SEV_INIT2.*EINVAL/,
    ],
    [['--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW', '--guest-features', '0x20'], 1, /SNPActive/],
  ] as const)('usage and launch errors %j -> exit %i, one line', async (args, code, re) => {
    const a = ['--mode', 'snp', ...args.map((x) => (x === 'BW' ? BW_PATH : x))];
    expect(await run(a)).toBe(code);
    expect(io.err).toMatch(re);
    expect(io.err.trim().split('\n')).toHaveLength(1);
  });
});
