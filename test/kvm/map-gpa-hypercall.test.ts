/**
 * The generic KVM_HC_MAP_GPA_RANGE hypercall (arch/x86/kvm/x86.c kvm_emulate_hypercall(),
 * ____kvm_emulate_hypercall() from 6.14) on VM types without a MapGPA/PSC protocol of their own, and
 * the guest op's `via` there. Expected values from x86.c: user exit not enabled -> -KVM_ENOSYS (1000);
 * !PAGE_ALIGNED(gpa) || !npages || gfn wrap -> -KVM_EINVAL (22); else the exit with args[0..2] =
 * a0, a1, a2 as the guest passed them and flags KVM_EXIT_HYPERCALL_LONG_MODE for a 64-bit guest.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../../src/index.js';
import type { GuestOp } from '../../src/kernel/guest/program.js';

function swProtected(kernel: string, exitEnabled: boolean) {
  const host = createHost({ kernel, platform: 'generic' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const hva = host.mmap({ length: 1 << 20, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot: 0,
    flags: 0,
    guest_phys_addr: 0,
    memory_size: 1 << 20,
    userspace_addr: hva,
  });
  if (exitEnabled)
    host.ioctl(vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      flags: 0,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  const start = (ops: GuestOp[]) => {
    const g = host.guest(vcpu);
    g.load(ops);
    host.ioctl(vcpu, 'KVM_RUN');
    return { g, run: host.kvmRun(vcpu) };
  };
  return { host, vcpu, start };
}

describe.each(['v6.8', 'v6.16', 'v7.0'])(
  'KVM_HC_MAP_GPA_RANGE hypercall on a SW_PROTECTED VM [%s]',
  (kernel) => {
    it("the default and via 'hypercall' are the same exit: args [a0, a1, a2], LONG_MODE", () => {
      for (const via of [undefined, 'hypercall'] as const) {
        const { run } = swProtected(kernel, true).start([
          { op: 'map_gpa', gpa: 0x3000, npages: 2, private: true, ...(via ? { via } : {}) },
        ]);
        expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
        expect(run.hypercall!.args.slice(0, 3)).toEqual([
          0x3000n,
          2n,
          BigInt(uapi.KVM_MAP_GPA_RANGE_ENCRYPTED),
        ]);
        expect(run.hypercall!.flags).toBe(1n);
      }
    });

    it('kvm_run is one page: the next exit rewrites the hypercall member a VMM kept', () => {
      const { host, vcpu, start } = swProtected(kernel, true);
      const { run } = start([
        { op: 'map_gpa', gpa: 0x3000, npages: 2, private: true },
        { op: 'map_gpa', gpa: 0x5000, npages: 1, private: false },
      ]);
      const kept = run.hypercall!;
      kept.ret = 0n;
      host.ioctl(vcpu, 'KVM_RUN');
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(kept.args.slice(0, 3)).toEqual([0x5000n, 1n, 0n]);
      expect(kept.flags).toBe(1n);
      expect(run.hypercall!.args[0]).toBe(0x5000n);
    });

    it.each([
      ['exit not enabled', false, 0x3000, 1, -1000n],
      ['a misaligned gpa', true, 0x3001, 1, -22n],
      ['npages 0', true, 0x3000, 0, -22n],
    ] as const)('%s -> RAX = %s, no exit', (_w, enabled, gpa, npages, ret) => {
      const { g, run } = swProtected(kernel, enabled).start([{ op: 'map_gpa', gpa, npages }]);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[0]!.ret).toBe(ret);
    });

    it.each(['tdvmcall', 'psc_msr', 'psc_ghcb'] as const)(
      'via %s: not a protocol of this VM type -> EINVAL from KVM_RUN',
      (via) => {
        const s = swProtected(kernel, true);
        const g = s.host.guest(s.vcpu);
        g.load([{ op: 'map_gpa', via, gpa: 0x3000, npages: 1 }]);
        expect(() => s.host.ioctl(s.vcpu, 'KVM_RUN')).toThrow(/EINVAL/);
      },
    );
  },
);

describe('kvm_run.hypercall.ret on the exit (9a1dfeff4414, December 2024: KVM writes 0)', () => {
  // Before the fix KVM never wrote ret: the next exit shows what userspace wrote at the last one,
  // and a VMM that leaves it alone (QEMU <= 9.2) hands that value back to the guest.
  const clears: Record<string, boolean> = { 'v6.8': false, 'v6.11': false, 'v6.16': true, 'v7.0': true };
  for (const [kernel, cleared] of Object.entries(clears)) {
    it(`the second exit shows ret ${cleared ? '0' : 'as the VMM left it'}, and the guest gets that [${kernel}]`, () => {
      const { host, vcpu, start } = swProtected(kernel, true);
      const { g, run } = start([
        { op: 'map_gpa', gpa: 0x3000, npages: 1, private: true },
        { op: 'map_gpa', gpa: 0x5000, npages: 1, private: false },
        { op: 'hlt' },
      ]);
      expect(run.hypercall!.ret).toBe(0n); // a fresh vCPU's kvm_run is zeroed
      run.hypercall!.ret = 22n; // the VMM fails the first conversion
      host.ioctl(vcpu, 'KVM_RUN');
      expect(g.results[0]!.ret).toBe(22n);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HYPERCALL);
      expect(run.hypercall!.ret).toBe(cleared ? 0n : 22n);
      host.ioctl(vcpu, 'KVM_RUN'); // the VMM does not write ret this time
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(g.results[1]!.ret).toBe(cleared ? 0n : 22n);
    });
  }
});
