/**
 * MRTD through the modelled host: QEMU's TD launch run against each kernel profile, the digest read
 * back from the modelled TDX module. Expected values: shared/reference/measurement.md section 7
 * (td-shim tee-info-hash for single pass; quex td-report-web for the Debian image's two pass; the
 * tiny image's two-pass value is marked UNCONFIRMED there).
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/measure-tdx.js';
import { tdxVmOf } from '../../src/kernel/arch/tdx/index.js';
import { runTdLaunch } from '../../src/measure/tdx/launch.js';
import { type CapturedOutput, captureOutput } from './capture-output.js';

const path = (name: string): string => new URL(`../../../shared/fixtures/${name}`, import.meta.url).pathname;
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(path(name)));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const VECTORS = {
  'tiny_tdvf.bin': {
    single:
      '90e9ed7411b91f6da974ab3dbb839f6cd7765824c4c07dcb7ba07d1bd66ccf5a5db32ec0d84b6d87bded5a4269e81fd1',
    'two-pass':
      '6a59df874f285bd44fb73497a295ff55de5f5dec260f3a0ae766a26c6b4868a10f79ab3d1fd459736367d7f67553ad35',
  },
  'ovmf-bookworm-2022.11-6+deb12u2.fd': {
    single:
      '4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47',
    'two-pass':
      'acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1',
  },
} as const;

describe('MRTD from a launch through the host (measurement.md 7)', () => {
  for (const [file, orders] of Object.entries(VECTORS)) {
    for (const [order, mrtd] of Object.entries(orders)) {
      for (const kernel of ['v6.16', 'v6.19', 'v7.0']) {
        it(`${file} ${order} on ${kernel}`, () => {
          const r = runTdLaunch(fixture(file), { order: order as 'single' | 'two-pass', kernel });
          expect(hex(r.mrtd)).toBe(mrtd);
        });
      }
    }
  }

  it('tiny_tdvf.bin: the module saw 3 PAGE.ADD and 32 MR.EXTEND (measurement.md 7.1), PermMem (PAGE.AUG) skipped', () => {
    const r = runTdLaunch(fixture('tiny_tdvf.bin'));
    const td = tdxVmOf(r.host, r.vmFd).td!;
    expect(td.calls.get('TDH.MEM.PAGE.ADD')).toBe(3);
    expect(td.calls.get('TDH.MR.EXTEND')).toBe(32);
    expect(td.sept.get(0x900)).toBeUndefined();
  });

  it('the Debian image: 538 PAGE.ADD and 7680 MR.EXTEND (measurement.md 5.1)', () => {
    const r = runTdLaunch(fixture('ovmf-bookworm-2022.11-6+deb12u2.fd'));
    const td = tdxVmOf(r.host, r.vmFd).td!;
    expect(td.calls.get('TDH.MEM.PAGE.ADD')).toBe(538);
    expect(td.calls.get('TDH.MR.EXTEND')).toBe(7680);
  });

  it('the launch runs with the safety invariants checked too', () => {
    const r = runTdLaunch(fixture('tiny_tdvf.bin'), { invariants: true, kernel: 'v7.0' });
    expect(hex(r.mrtd)).toBe(VECTORS['tiny_tdvf.bin'].single);
  });
});

describe('gmemlab measure tdx (main)', () => {
  let io: CapturedOutput = { out: '', err: '' };
  const capture = () => {
    io = captureOutput();
  };
  afterEach(() => vi.restoreAllMocks());

  for (const [file, orders] of Object.entries(VECTORS)) {
    for (const [order, mrtd] of Object.entries(orders)) {
      it(`--firmware ${file} --order ${order}`, async () => {
        capture();
        const code = await main(['--firmware', path(file), '--order', order]);
        expect(code).toBe(0);
        expect(io.out).toBe(`${mrtd}\n`);
      });
    }
  }

  it('OVMF_CODE.fd alone (the image without its 128 KiB variable store): one-line error, exit 1', async () => {
    const code = fixture('ovmf-bookworm-2022.11-6+deb12u2.fd').subarray(0x20000);
    const tmp = `${process.env['TMPDIR'] ?? '/tmp'}/gmemlab-ovmf-code-${process.pid}.fd`;
    (await import('node:fs')).writeFileSync(tmp, code);
    capture();
    expect(await main(['--firmware', tmp])).toBe(1);
    expect(io.out).toBe('');
    expect(io.err).toMatch(/runs past the end/);
    expect(io.err.trim().split('\n')).toHaveLength(1);
  });

  it('an image without TDX metadata (an SNP OVMF suffix): one-line error, exit 1', async () => {
    capture();
    expect(await main(['--firmware', path('ovmf_AmdSev_suffix.bin')])).toBe(1);
    expect(io.err.trim().split('\n')).toHaveLength(1);
    expect(io.err).toMatch(/^gmemlab measure tdx: /);
  });

  it('a bad --order is a usage error (exit 2)', async () => {
    capture();
    expect(await main(['--firmware', path('tiny_tdvf.bin'), '--order', 'three-pass'])).toBe(2);
    expect(io.err).toMatch(/single, two-pass/);
  });
});
