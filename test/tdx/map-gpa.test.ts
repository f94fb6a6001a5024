/**
 * TDG.VP.VMCALL<MapGPA> from a TD guest, as arch/x86/kvm/vmx/tdx.c handles it. Expected values are
 * read from tdx.c at torvalds/linux 3829d81b6958 (6.16) and kvm-x86/linux 09c6f74ecb86 (the same
 * tdx_map_gpa()/__tdx_map_gpa(); its completion differs only after 7.0):
 * - tdx_map_gpa(): !user_exit_on_hypercall -> TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED (INVALID_OPERAND
 *   before <20250619180159.187358-2-pbonzini@redhat.com>, 6.16-rc); gpa + size <= gpa, an illegal
 *   GPA at either end, or private/shared ends -> INVALID_OPERAND; then !PAGE_ALIGNED(gpa or size)
 *   -> ALIGN_ERROR; every error sets R11 = gpa.
 * - __tdx_map_gpa(): one exit per TDX_MAP_GPA_MAX_LEN = 2 MiB; args[0] = gpa & ~shared bit,
 *   args[1] = size / PAGE_SIZE, args[2] = ENCRYPTED iff vt_is_tdx_private_gpa(gpa), ret = 0,
 *   flags = KVM_EXIT_HYPERCALL_LONG_MODE.
 * - tdx_complete_vmcall_map_gpa(): ret != 0 -> INVALID_OPERAND, R11 = map_gpa_next; else the next
 *   chunk's exit without entering the guest (return 0), SUCCESS once map_gpa_next >= map_gpa_end.
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../../src/index.js';
import {
  TDVMCALL_STATUS_ALIGN_ERROR,
  TDVMCALL_STATUS_INVALID_OPERAND,
  TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
} from '../../src/kernel/arch/tdx/tdvmcall.js';
import type { GuestOp } from '../../src/kernel/guest/program.js';
import { buildTd, DEV_TREE, finalize, MiB, type Td, UPSTREAM } from './td.js';

/** GPAW 48 (td.ts GPAW48): the shared bit is bit 47 (TDX_SHARED_BIT_PWL_4). */
const SHARED = 1n << 47n;
const HC = BigInt(uapi.KVM_HC_MAP_GPA_RANGE);
const ENC = BigInt(uapi.KVM_MAP_GPA_RANGE_ENCRYPTED);
const DEC = BigInt(uapi.KVM_MAP_GPA_RANGE_DECRYPTED);

function runningTd(kernel: string, exitEnabled = true): Required<Td> {
  const td = buildTd(kernel);
  finalize(td);
  if (exitEnabled)
    td.host.ioctl(td.vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      flags: 0,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
  return td;
}

function start(td: Required<Td>, ops: GuestOp[]) {
  const g = td.host.guest(td.vcpu);
  g.load(ops);
  td.host.ioctl(td.vcpu, 'KVM_RUN');
  return { g, run: td.host.kvmRun(td.vcpu) };
}

for (const kernel of UPSTREAM) {
  describe(`TDG.VP.VMCALL<MapGPA> [${kernel}]`, () => {
    it('__tdx_map_gpa: a shared GPA -> args [gpa without the shared bit, pages, DECRYPTED], LONG_MODE, ret 0', () => {
      const td = runningTd(kernel);
      const { run } = start(td, [{ op: 'map_gpa', gpa: SHARED | 0x10000n, npages: 4 }]);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(run.hypercall).toEqual({
        nr: HC,
        args: [0x10000n, 4n, DEC, 0n, 0n, 0n],
        ret: 0n,
        flags: 1n, // KVM_EXIT_HYPERCALL_LONG_MODE
      });
    });

    it('__tdx_map_gpa: args[2] comes from the GPA (shared bit clear -> ENCRYPTED), not from attrs', () => {
      const td = runningTd(kernel);
      const { run } = start(td, [{ op: 'map_gpa', gpa: 0x10000, npages: 1 }]);
      expect(run.hypercall!.args.slice(0, 3)).toEqual([0x10000n, 1n, ENC]);
    });

    it("the op's private: false makes the guest pass the shared alias (R12 = gpa | shared bit) -> DECRYPTED", () => {
      const td = runningTd(kernel);
      const { run } = start(td, [{ op: 'map_gpa', gpa: 0x10000, npages: 1, private: false }]);
      expect(run.hypercall!.args.slice(0, 3)).toEqual([0x10000n, 1n, DEC]);
    });

    it('completion with ret 0 on the last chunk: R10 = TDVMCALL_STATUS_SUCCESS, the guest goes on', () => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa: SHARED, npages: 1 }, { op: 'hlt' }]);
      run.hypercall!.ret = 0n;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({ ret: 0n });
    });

    it('tdx_map_gpa: exit not enabled -> TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED, R11 = gpa, no exit', () => {
      const td = runningTd(kernel, false);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa: SHARED | 0x3000n, npages: 1 }]);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({ ret: 0x8000000000000003n, r11: SHARED | 0x3000n });
    });

    it('tdx_map_gpa: the exit check comes first (not enabled and misaligned -> SUBFUNC_UNSUPPORTED)', () => {
      const td = runningTd(kernel, false);
      const { g } = start(td, [{ op: 'map_gpa', gpa: SHARED | 0x3800n, npages: 1 }]);
      expect(g.results[0]!.ret).toBe(TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED);
    });

    it.each([
      ['a misaligned GPA', SHARED | 0x10800n, 0x1000n],
      ['a misaligned size', SHARED | 0x10000n, 0x1800n],
    ])('tdx_map_gpa: %s -> TDVMCALL_STATUS_ALIGN_ERROR (0x8000000000000002), R11 = gpa', (_w, gpa, size) => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa, npages: 0, size }]);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({ ret: 0x8000000000000002n, r11: gpa });
    });

    it.each([
      ['crossing the shared bit (private start, shared end)', SHARED - 0x1000n, 0x2000n],
      ['an empty range (gpa + size <= gpa)', SHARED, 0n],
      ['a range wrapping around 2^64', SHARED, (1n << 64n) - 0x1000n],
      ['a GPA beyond GPAW 48 (!kvm_vcpu_is_legal_gpa)', 1n << 48n, 0x1000n],
      ['a range whose last byte is beyond GPAW 48', (1n << 48n) - 0x1000n, 0x2000n],
      // The range checks come before the alignment check.
      ['crossing the shared bit and misaligned', SHARED - 0x800n, 0x1000n],
    ])('tdx_map_gpa: %s -> TDVMCALL_STATUS_INVALID_OPERAND, R11 = gpa', (_w, gpa, size) => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa, npages: 0, size }]);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({ ret: TDVMCALL_STATUS_INVALID_OPERAND, r11: gpa });
    });

    it('TDX_MAP_GPA_MAX_LEN: 5 MiB is three exits of 2, 2 and 1 MiB; the guest does not run between them', () => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa: SHARED, npages: (5 * MiB) / 4096 }, { op: 'hlt' }]);
      const seen: bigint[][] = [run.hypercall!.args.slice(0, 3)];
      for (let i = 0; i < 2; i++) {
        run.hypercall!.ret = 0n;
        td.host.ioctl(td.vcpu, 'KVM_RUN');
        expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
        // tdx_complete_vmcall_map_gpa() returned 0: the TDVMCALL is still in progress.
        expect(g.pc).toBe(0);
        expect(g.results[0]).toBeUndefined();
        seen.push(run.hypercall!.args.slice(0, 3));
      }
      expect(seen).toEqual([
        [0n, 512n, DEC],
        [2n * BigInt(MiB), 512n, DEC],
        [4n * BigInt(MiB), 256n, DEC],
      ]);
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({ ret: 0n });
    });

    it('a chunk failed by the VMM (ret != 0): INVALID_OPERAND, R11 = map_gpa_next (the failed chunk, shared bit kept)', () => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa: SHARED, size: 4 * MiB, npages: 0 }, { op: 'hlt' }]);
      run.hypercall!.ret = 0n;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(run.hypercall!.args[0]).toBe(2n * BigInt(MiB));
      run.hypercall!.ret = 1n;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]).toEqual({
        ret: TDVMCALL_STATUS_INVALID_OPERAND,
        r11: SHARED | (2n * BigInt(MiB)),
      });
    });

    it('kvm_run is one page: a VMM that kept run.hypercall from the first chunk fails the second through it', () => {
      const td = runningTd(kernel);
      const { g, run } = start(td, [{ op: 'map_gpa', gpa: SHARED, size: 4 * MiB, npages: 0 }, { op: 'hlt' }]);
      const kept = run.hypercall!;
      kept.ret = 0n;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      // __tdx_map_gpa() wrote the second chunk into the same bytes.
      expect(run.hypercall).toBe(kept);
      expect(kept.args[0]).toBe(2n * BigInt(MiB));
      kept.ret = 22n;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(g.results[0]).toEqual({
        ret: TDVMCALL_STATUS_INVALID_OPERAND,
        r11: SHARED | (2n * BigInt(MiB)),
      });
    });

    it('kvm_arch_vcpu_ioctl_run: the next chunk is returned even with immediate_exit set (cui runs first)', () => {
      const td = runningTd(kernel);
      const { run } = start(td, [{ op: 'map_gpa', gpa: SHARED, size: 4 * MiB, npages: 0 }]);
      run.hypercall!.ret = 0n;
      run.immediate_exit = 1;
      td.host.ioctl(td.vcpu, 'KVM_RUN');
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(run.hypercall!.args[0]).toBe(2n * BigInt(MiB));
    });

    it("via 'hypercall' (TDG.VP.VMCALL, R10 = KVM_HC_MAP_GPA_RANGE): ____kvm_emulate_hypercall keeps the shared bit in a0", () => {
      const td = runningTd(kernel);
      const { run } = start(td, [
        { op: 'map_gpa', via: 'hypercall', gpa: SHARED | 0x10000n, npages: 4, private: false },
      ]);
      expect(run.hypercall!.args.slice(0, 3)).toEqual([SHARED | 0x10000n, 4n, DEC]);
      expect(run.hypercall!.flags).toBe(1n);
    });

    it("via 'hypercall' with the exit not enabled -> -KVM_ENOSYS in R10 (__kvm_emulate_hypercall)", () => {
      const td = runningTd(kernel, false);
      const { g } = start(td, [{ op: 'map_gpa', via: 'hypercall', gpa: SHARED, npages: 1 }]);
      expect(g.results[0]!.ret).toBe(-1000n);
    });

    it('a PSC protocol on a TD is not available: EINVAL from KVM_RUN', () => {
      const td = runningTd(kernel);
      const g = td.host.guest(td.vcpu);
      g.load([{ op: 'map_gpa', via: 'psc_msr', gpa: 0, npages: 1 }]);
      expect(() => td.host.ioctl(td.vcpu, 'KVM_RUN')).toThrow(/EINVAL/);
    });
  });
}

// tdx_map_gpa() before 6.16-rc's SUBFUNC_UNSUPPORTED returned INVALID_OPERAND for an untrapped
// KVM_HC_MAP_GPA_RANGE (the patch's removed line); the 2024 dev trees are taken to have that code.
for (const kernel of DEV_TREE) {
  describe(`TDG.VP.VMCALL<MapGPA> [${kernel}] (inferred: pre-SUBFUNC_UNSUPPORTED status)`, () => {
    it('tdx_map_gpa: exit not enabled -> TDVMCALL_STATUS_INVALID_OPERAND, R11 = gpa', () => {
      const td = runningTd(kernel, false);
      const { g } = start(td, [{ op: 'map_gpa', gpa: SHARED, npages: 1 }]);
      expect(g.results[0]).toEqual({ ret: TDVMCALL_STATUS_INVALID_OPERAND, r11: SHARED });
    });
  });
}

it('TDVMCALL status values (arch/x86/include/asm/shared/tdx.h)', () => {
  expect([
    TDVMCALL_STATUS_INVALID_OPERAND,
    TDVMCALL_STATUS_ALIGN_ERROR,
    TDVMCALL_STATUS_SUBFUNC_UNSUPPORTED,
  ]).toEqual([0x8000000000000000n, 0x8000000000000002n, 0x8000000000000003n]);
});
