/**
 * SEV-SNP page-state change requests reaching the VMM as KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE).
 * Expected values from arch/x86/kvm/svm/sev.c (torvalds/linux @4b4193256c8d; the 6.11 pull
 * <20240510211024.556136-9-michael.roth@amd.com> for the MSR protocol) and sev-common.h / svm.h:
 * - snp_begin_psc_msr(): args[0] = gfn << 12, args[1] = 1, args[2] = ENCRYPTED/DECRYPTED |
 *   KVM_MAP_GPA_RANGE_PAGE_SZ_4K; exit not enabled -> set_ghcb_msr(GHCB_MSR_PSC_RESP_ERROR)
 *   = BIT(63) | 0x015; snp_complete_psc_msr(): ret != 0 -> GHCB_MSR_PSC_RESP_ERROR, else
 *   GHCB_MSR_PSC_RESP (0x015).
 * - snp_begin_psc(): exit not enabled -> SW_EXITINFO2 = VMGEXIT_PSC_ERROR_GENERIC (0x100 << 32);
 *   adjacent 4K entries of one operation merge into one exit (args[1] = their count);
 *   snp_complete_one_psc(): ret != 0 -> VMGEXIT_PSC_ERROR_GENERIC, else the buffer completes with 0.
 * - hypercall.flags is never written on these paths; hypercall.ret is set to 0 from 6.13
 *   ("KVM: x86: clear vcpu->run->hypercall.ret before exiting for KVM_EXIT_HYPERCALL").
 */
import { describe, expect, it } from 'vitest';
import {
  GHCB_MSR_PSC_RESP,
  GHCB_MSR_PSC_RESP_ERROR,
  VMGEXIT_PSC_ERROR_GENERIC,
} from '../../src/kernel/arch/sev/psc.js';
import type { GuestOp } from '../../src/kernel/guest/program.js';
import { getProfile } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import { MiB, SNP_KERNELS, snpVm } from './snp-vm.js';

const PAGE = 4096;
const HC = BigInt(uapi.KVM_HC_MAP_GPA_RANGE);
const ENC = BigInt(uapi.KVM_MAP_GPA_RANGE_ENCRYPTED);
const DEC = BigInt(uapi.KVM_MAP_GPA_RANGE_DECRYPTED);
const SZ_4K = BigInt(uapi.KVM_MAP_GPA_RANGE_PAGE_SZ_4K);

function launched(kernel: string, exitEnabled = true) {
  const s = snpVm(kernel, { size: 4 * MiB });
  const vcpu = s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
  s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4 * PAGE, type: 1 });
  s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
  if (exitEnabled)
    s.host.ioctl(s.vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
  const start = (ops: GuestOp[]) => {
    const g = s.host.guest(vcpu);
    g.load(ops);
    s.host.ioctl(vcpu, 'KVM_RUN');
    return { g, run: s.host.kvmRun(vcpu) };
  };
  const again = () => s.host.ioctl(vcpu, 'KVM_RUN');
  return { ...s, vcpu, start, again };
}

describe.each(SNP_KERNELS)('SNP page-state change on %s', (kernel) => {
  const clearsRet = getProfile(kernel)!.x86.hypercallExitClearsRet;

  it('snp_begin_psc_msr: args [gpa, 1, ENCRYPTED | PAGE_SZ_4K]; completion ret 0 -> GHCB_MSR_PSC_RESP (0x15)', () => {
    const s = launched(kernel);
    const { g, run } = s.start([
      { op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 1, private: true },
      { op: 'hlt' },
    ]);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
    expect(run.hypercall!.nr).toBe(HC);
    expect(run.hypercall!.args.slice(0, 3)).toEqual([BigInt(MiB), 1n, ENC | SZ_4K]);
    // Fresh vCPU: the kvm_run page is zeroed and the PSC path writes neither ret (pre-6.13) nor flags.
    expect([run.hypercall!.ret, run.hypercall!.flags]).toEqual([0n, 0n]);
    run.hypercall!.ret = 0n;
    s.again();
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]).toEqual({ ret: 0x15n });
  });

  it('MSR protocol: one request per page (Linux early_set_pages_state), each args[1] = 1', () => {
    const s = launched(kernel);
    const { g, run } = s.start([{ op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 3, private: false }]);
    const gpas: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(run.hypercall!.args.slice(1, 3)).toEqual([1n, DEC | SZ_4K]);
      gpas.push(run.hypercall!.args[0]!);
      run.hypercall!.ret = 0n;
      s.again();
    }
    expect(gpas).toEqual([BigInt(MiB), BigInt(MiB + PAGE), BigInt(MiB + 2 * PAGE)]);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]!.ret).toBe(GHCB_MSR_PSC_RESP);
  });

  it('snp_begin_psc_msr: exit not enabled -> GHCB_MSR_PSC_RESP_ERROR (BIT(63) | 0x15), guest resumes', () => {
    const s = launched(kernel, false);
    const { g, run } = s.start([{ op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 1, private: true }]);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]!.ret).toBe(0x8000000000000015n);
  });

  it('snp_complete_psc_msr: ret != 0 -> GHCB_MSR_PSC_RESP_ERROR; the guest stops the range there', () => {
    const s = launched(kernel);
    const { g, run } = s.start([{ op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 3, private: true }]);
    run.hypercall!.ret = 1n;
    s.again();
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]!.ret).toBe(GHCB_MSR_PSC_RESP_ERROR);
  });

  it('snp_begin_psc (GHCB buffer, the default): 100 pages in buffers of 64 entries -> exits of 64 and 36 pages', () => {
    const s = launched(kernel);
    const { g, run } = s.start([{ op: 'map_gpa', gpa: MiB, npages: 100, private: false }]);
    expect(run.hypercall!.args.slice(0, 3)).toEqual([BigInt(MiB), 64n, DEC | SZ_4K]);
    run.hypercall!.ret = 0n;
    s.again();
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
    expect(run.hypercall!.args.slice(0, 3)).toEqual([BigInt(MiB + 64 * PAGE), 36n, DEC | SZ_4K]);
    run.hypercall!.ret = 0n;
    s.again();
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(g.results[0]!.ret).toBe(0n);
  });

  it('snp_begin_psc: exit not enabled -> SW_EXITINFO2 = VMGEXIT_PSC_ERROR_GENERIC (0x100 << 32)', () => {
    const s = launched(kernel, false);
    const { g } = s.start([{ op: 'map_gpa', via: 'psc_ghcb', gpa: MiB, npages: 2, private: true }]);
    expect(g.results[0]!.ret).toBe(0x10000000000n);
  });

  it('snp_complete_one_psc: ret != 0 -> VMGEXIT_PSC_ERROR_GENERIC', () => {
    const s = launched(kernel);
    const { g, run } = s.start([{ op: 'map_gpa', via: 'psc_ghcb', gpa: MiB, npages: 2, private: true }]);
    run.hypercall!.ret = 22n;
    s.again();
    expect(g.results[0]!.ret).toBe(VMGEXIT_PSC_ERROR_GENERIC);
  });

  it(`hypercall.ret/flags the PSC exit leaves alone: ${clearsRet ? 'ret = 0 (6.13+)' : 'ret as the last exit left it (before 6.13)'}, flags stale`, () => {
    const s = launched(kernel);
    // A KVM hypercall first (x86.c writes flags = LONG_MODE); the VMM fails it with ret 7.
    const { run } = s.start([
      { op: 'map_gpa', via: 'hypercall', gpa: MiB, npages: 1, private: true },
      { op: 'map_gpa', via: 'psc_msr', gpa: MiB, npages: 1, private: false },
    ]);
    expect(run.hypercall!.flags).toBe(1n);
    run.hypercall!.ret = 7n;
    s.again();
    expect(run.hypercall!.args.slice(0, 3)).toEqual([BigInt(MiB), 1n, DEC | SZ_4K]);
    expect(run.hypercall!.flags).toBe(1n);
    expect(run.hypercall!.ret).toBe(clearsRet ? 0n : 7n);
  });
});
