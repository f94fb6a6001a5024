/**
 * `gmemlab measure snp` against virtee/sev-snp-measure's command line (sevsnpmeasure/cli.py at
 * 8f2b337e, the newest stored commit): option names, get_vcpu_sig() precedence, the check order and
 * messages of main(), --dump-vmsa, -v, --version, --vcpus 0 and 64-bit signatures.
 * Expected values: upstream's tests/test_cli.py (precedence), its README (S1..S6 via measurement.md),
 * and runs of upstream's own cli.py at 8f2b337e under CPython 3.11 on the Debian OVMF fixture (BW):
 * digests, argparse's messages and the SHA-256 of the vmsa<N>.bin files it writes. None comes from
 * running gmemlab.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pyRepr } from '../../src/cli/argparse.js';
import { main } from '../../src/cli/measure-snp.js';
import { GMEMLAB_VERSION } from '../../src/cli/version.js';
import { FdTable } from '../../src/kernel/file.js';

const BW = new URL('../../../shared/fixtures/ovmf-bookworm-2022.11-6+deb12u2.fd', import.meta.url).pathname;

const S1 = '11570979c77a0adb515761a702527c8b9e11554e730552621d950988613a3a75c6ff1703f540bd22a9beede8fe7a97e3';
const S4 = 'e9c10ab98f8086bf4a4993dcdc1f768b1128bcb02301d1791f1d3274329e790db2d12a301d66d99a462a13b5d87e2840';
const S5 = 'ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6';

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = {
    out: (t: string): void => {
      out += t;
    },
    err: (t: string): void => {
      err += t;
    },
  };
  const code = await main(
    args.map((a) => (a === 'BW' ? BW : a)),
    io,
  );
  return { code, out, err };
}
const ok = (out: string) => ({ code: 0, out: `${out}\n`, err: '' });
const usage = (msg: string) => ({ code: 2, out: '', err: `gmemlab measure snp: error: ${msg}\n` });

describe('--vmm-type: VMMType members QEMU, ec2, gce (vmm_types.py); qemu kept as an alias', () => {
  it('QEMU (the default and the README spelling) and qemu give S1', async () => {
    for (const v of [[], ['--vmm-type', 'QEMU'], ['--vmm-type=QEMU'], ['--vmm-type', 'qemu']]) {
      expect(
        await run('--mode', 'snp', '--vcpus', '1', '--vcpu-type', 'EPYC-v4', ...v, '--ovmf', 'BW'),
      ).toEqual(ok(S1));
    }
  });
  it('ec2 needs no vCPU signature (upstream run: --vcpus 2 --vmm-type ec2)', async () => {
    expect(await run('--mode', 'snp', '--vcpus', '2', '--vmm-type', 'ec2', '--ovmf', 'BW')).toEqual(
      ok('7f6fef705ba886215518820a96b21feaa2f874814889d8b5a776b1abf0058c913ca457043ab5a3092f35847c3078c93c'),
    );
  });
  it('anything else: parser.error("unknown VMM type \'...\'"), exit 2', async () => {
    expect(await run('--mode', 'snp', '--vcpus', '1', '--vmm-type', 'Qemu', '--ovmf', 'BW')).toEqual(
      usage("unknown VMM type 'Qemu'"),
    );
  });
});

describe('get_vcpu_sig(): --vcpu-family first, then --vcpu-sig, then --vcpu-type (tests/test_cli.py)', () => {
  it('family 25 model 1 stepping 1 wins over --vcpu-sig and --vcpu-type: EPYC-Milan (README S4)', async () => {
    const args = ['--vcpu-family', '25', '--vcpu-model', '1', '--vcpu-stepping', '1'];
    expect(
      await run(
        '--mode',
        'snp',
        '--vcpus',
        '4',
        ...args,
        '--vcpu-sig',
        '0x800f12',
        '--vcpu-type',
        'EPYC-v4',
        '--ovmf',
        'BW',
      ),
    ).toEqual(ok(S4));
  });
  it('--vcpu-sig 0x800f12 (EPYC-v4) wins over --vcpu-type EPYC-Milan: S1', async () => {
    expect(
      await run(
        '--mode',
        'snp',
        '--vcpus',
        '1',
        '--vcpu-sig',
        '0x800f12',
        '--vcpu-type',
        'EPYC-Milan',
        '--ovmf',
        'BW',
      ),
    ).toEqual(ok(S1));
  });
  it('zero is a value (8f2b337e "Allow zero as value for vcpu sig & family"): family 0/0/0 = sig 0', async () => {
    const SIG0 =
      'b06160e707eda1b3ecfb55fb16f7e2c6a54aa47fc80211c1d475a9adcb08a23e9d24c433423fa46adb4428c66d801d88';
    expect(
      await run('--mode', 'snp', '--vcpus', '1', '--vcpu-sig', '0', '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW'),
    ).toEqual(ok(SIG0));
    const fam0 = ['--vcpu-family', '0', '--vcpu-model', '0', '--vcpu-stepping', '0'];
    expect(
      await run('--mode', 'snp', '--vcpus', '1', ...fam0, '--vcpu-sig', '0x800f12', '--ovmf', 'BW'),
    ).toEqual(ok(SIG0));
  });
  it('a signature above 32 bits stays in the 64-bit RDX, modulo 2^64 (vmsa.py rdx c_uint64)', async () => {
    expect(await run('--mode', 'snp', '--vcpus', '1', '--vcpu-sig', '0x100800f12', '--ovmf', 'BW')).toEqual(
      ok('8384e4385d9dd6537870f3121ea2505bfe4d03178a5b8f0926824071e18943d19c8aad0c79cb897c9e090ab81f540434'),
    );
    expect(
      await run('--mode', 'snp', '--vcpus', '1', '--vcpu-sig', '0x1_0000_0000_0080_0f12', '--ovmf', 'BW'),
    ).toEqual(ok(S1));
  });
  it('--vcpu-family without --vcpu-model: upstream dies with a TypeError (exit 1); gmemlab: one line, exit 1', async () => {
    expect(await run('--mode', 'snp', '--vcpus', '1', '--vcpu-family', '25', '--ovmf', 'BW')).toEqual({
      code: 1,
      out: '',
      err: 'Error: --vcpu-family needs --vcpu-model and --vcpu-stepping\n',
    });
  });
});

describe('snp:ovmf-hash prints hex and returns before any other check (cli.py main())', () => {
  it('--output-format base64, -v and a missing --kernel do not apply: S5 in hex', async () => {
    expect(
      await run(
        '--mode',
        'snp:ovmf-hash',
        '-v',
        '--output-format',
        'base64',
        '--kernel',
        '/nonexistent/k',
        '--ovmf',
        'BW',
      ),
    ).toEqual(ok(S5));
  });
});

describe("main()'s checks, in its order, before any file is read; argparse's messages (CPython 3.11)", () => {
  it.each<[string[], string]>([
    [['--vcpus', '1', '--foo', '--ovmf', 'BW', 'x'], 'the following arguments are required: --mode'],
    [['--mode', 'snp', '--vcpus', '1', '--foo', '--ovmf', 'BW', 'x'], 'unrecognized arguments: --foo x'],
    [['--mode', 'snp'], 'the following arguments are required: --ovmf'],
    [
      ['--mode', 'bad', '--ovmf', 'BW'],
      "argument --mode: invalid choice: 'bad' (choose from 'sev', 'seves', 'snp', 'snp:ovmf-hash', 'snp:svsm')",
    ],
    [['--mode', 'snp', '--vcpus'], 'argument --vcpus: expected one argument'],
    [['--mode', 'snp', '--vcpus', 'two', '--ovmf', 'BW'], "argument --vcpus: invalid int value: 'two'"],
    [
      ['--mode', 'snp', '--vcpu-sig', 'x', '--ovmf', 'BW'],
      "argument --vcpu-sig: invalid auto_base_int value: 'x'",
    ],
    [
      ['--mode', 'snp', '--guest-features', 'x', '--ovmf', 'BW'],
      "argument --guest-features: invalid <lambda> value: 'x'",
    ],
    [
      ['--mode', 'snp', '--dump-vmsa=1', '--ovmf', 'BW'],
      "argument --dump-vmsa: ignored explicit argument '1'",
    ],
    [
      ['--mode', 'snp', '--vcpu', '2', '--ovmf', 'BW'],
      'ambiguous option: --vcpu could match --vcpus, --vcpu-type, --vcpu-sig, --vcpu-family, --vcpu-model, --vcpu-stepping',
    ],
    [['--mode', 'snp', '--append', '-x', '--ovmf', 'BW'], 'argument --append: expected one argument'],
    [
      ['--mode', 'snp', '--initrd', '/nonexistent', '--vcpus', '1', '--ovmf', '/nonexistent'],
      '--kernel required when using --initrd',
    ],
    [
      ['--mode', 'snp', '--append', 'quiet', '--vcpus', '1', '--ovmf', '/nonexistent'],
      '--kernel required when using --append',
    ],
    [
      ['--mode', 'snp', '--vcpu-type', 'EPYC-v4', '--ovmf', '/nonexistent'],
      "missing --vcpus N in guest mode 'snp'",
    ],
    [
      ['--mode', 'snp', '--vcpus', '1', '--ovmf', '/nonexistent'],
      "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode 'snp'",
    ],
  ])('%j', async (args, msg) => {
    expect(await run(...args)).toEqual(usage(msg));
  });
  it('abbreviations and --opt=value are taken as argparse takes them', async () => {
    expect(await run('--mode=snp', '--vcpus=1', '--vcpu-t', 'EPYC-v4', '--ov', 'BW')).toEqual(ok(S1));
  });
  it('the modes gmemlab does not model are refused in one line, exit 2', async () => {
    expect(await run('--mode', 'seves', '--vcpus', '1', '--ovmf', 'BW')).toEqual(
      usage("guest mode 'seves' is not modelled by gmemlab (snp, snp:ovmf-hash)"),
    );
  });
});

describe('-v, --version', () => {
  it('-v / --verbose: "Calculated SEV_SNP guest measurement: ..." (print_measurement)', async () => {
    for (const v of ['-v', '--verbose']) {
      expect(await run('--mode', 'snp', v, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW')).toEqual(
        ok(`Calculated SEV_SNP guest measurement: ${S1}`),
      );
    }
  });
  it("--version prints gmemlab's version (upstream prints 'sev-snp-measure 0.0.13'), the one in package.json", async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(GMEMLAB_VERSION).toBe(pkg.version);
    expect(await run('--version')).toEqual(ok(`gmemlab measure snp ${pkg.version}`));
  });
  // --dump-vmsa: test/cli/built-cli.test.ts (it writes to the working directory; workers cannot chdir).
});

describe('vCPU counts: range(vcpus) upstream; KVM_CAP_MAX_VCPUS and RLIMIT_NOFILE in the model', () => {
  const V0 =
    '1c4a6703fc7248581d08c597e73812dbccc1df1e8a415d47f8553237bb2edfedceb18860550cfac653d2530cbcee0548';
  it('--vcpus 0 and a negative count: no VMSA (upstream runs)', async () => {
    for (const n of ['0', '-2']) {
      expect(await run('--mode', 'snp', '--vcpus', n, '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW')).toEqual(
        ok(V0),
      );
    }
  });
  it('4096 vCPUs (x86 KVM_MAX_VCPUS with MAXSMP): beyond the 1024 fds of a login session, as QEMU raises RLIMIT_NOFILE', async () => {
    expect(FdTable.RLIMIT_NOFILE).toBe(1024);
    expect(await run('--mode', 'snp', '--vcpus', '4096', '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW')).toEqual(
      ok('645c7141decf7314024d9241fc996bab01781416dbe08e12d53e13f7411d0c8437312307e97897447051925b31ac166f'),
    );
  }, 20_000);
  it("more than KVM_CAP_MAX_VCPUS: QEMU kvm_init()'s message, exit 1, nothing built", async () => {
    for (const n of ['4097', '100000', '99999999999999999999']) {
      const r = await run('--mode', 'snp', '--vcpus', n, '--vcpu-type', 'EPYC-v4', '--ovmf', 'BW');
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `Error: Number of SMP cpus requested (${n}) exceeds the maximum cpus supported by KVM (4096)\n`,
      );
    }
  });
  it("argparse's repr() of a bad value: backslashes and control characters escaped", () => {
    // CPython: repr("a'b\\c") is "a'b\\\\c" (double quotes, escaped backslash); repr('x\ny') is 'x\\ny'.
    expect(pyRepr("a'b\\c")).toBe('"a\'b\\\\c"');
    expect(pyRepr('x\ny')).toBe("'x\\ny'");
    expect(pyRepr('it\'s "q"')).toBe("'it\\'s \"q\"'");
    expect(pyRepr('\u0001')).toBe("'\\x01'");
  });
});
