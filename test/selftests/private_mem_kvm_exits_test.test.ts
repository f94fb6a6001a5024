/**
 * Port of tools/testing/selftests/kvm/x86/private_mem_kvm_exits_test.c (torvalds 5171573c).
 *
 * guest_repeatedly_read() loops forever reading the u64 at EXITS_TEST_GVA (= GPA 0xc0000000); a
 * guest program is finite, so "the guest keeps reading" is a program of one read that the test
 * loads again before each KVM_RUN. run_vcpu_get_exit_reason(): if KVM_RUN fails, errno must be
 * EFAULT and exit_reason KVM_EXIT_MEMORY_FAULT. The deletion thread of
 * test_private_access_memslot_deleted races the vCPU; both orders it allows are generated (the
 * guest's first read before or after the deletion) and both must end in the same exit.
 * Generated for every profile: KVM_X86_SW_PROTECTED_VM exists from v6.8.
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, type Host, uapi } from '../../src/index.js';
import {
  kvm_check_cap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  type SysResult,
  sys,
  vm_create_barebones_type,
  vm_mem_region_delete,
  vm_mem_set_private,
  vm_userspace_mem_region_add,
  vm_vcpu_add,
} from './lib/kvm_util.js';

const EXITS_TEST_GPA = 0xc0000000;
const EXITS_TEST_NPAGES = 1;
const EXITS_TEST_SIZE = EXITS_TEST_NPAGES * PAGE_SIZE;
const EXITS_TEST_SLOT = 10;

/** Load one more iteration of guest_repeatedly_read()'s loop and run it. */
function runVcpuGetExitReason(host: Host, vcpu: number): { ret: SysResult<number>; exit: number } {
  host.guest(vcpu).load([{ op: 'read', gpa: EXITS_TEST_GPA, length: 8 }]);
  const ret = sys(() => host.ioctl(vcpu, 'KVM_RUN'));
  const exit = host.kvmRun(vcpu).exit_reason;
  if (!ret.ok) {
    expect(ret.code).toBe('EFAULT');
    expect(exit).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
  }
  return { ret, exit };
}

function expectPrivateMemoryFault(host: Host, vcpu: number): void {
  const { ret, exit } = runVcpuGetExitReason(host, vcpu);
  expect(ret.ok).toBe(false);
  expect(exit).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
  const mf = host.kvmRun(vcpu).memory_fault!;
  expect(mf.flags).toBe(BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE));
  expect(mf.gpa).toBe(BigInt(EXITS_TEST_GPA));
  expect(mf.size).toBe(BigInt(EXITS_TEST_SIZE));
}

function protectedVm(kernel: string) {
  const host = newHost({ kernel, platform: 'generic' });
  // main(): TEST_REQUIRE(KVM_CAP_VM_TYPES & BIT(KVM_X86_SW_PROTECTED_VM)).
  expect(kvm_check_cap(host, uapi.KVM_CAP_VM_TYPES) & (1 << uapi.KVM_X86_SW_PROTECTED_VM)).not.toBe(0);
  const vm = vm_create_barebones_type(host, uapi.KVM_X86_SW_PROTECTED_VM);
  // __vm_create()'s slot 0: guest code, stack and page tables (shared memory below 0xc0000000).
  vm_userspace_mem_region_add(vm, 0, 0, 512, 0);
  const vcpu = vm_vcpu_add(vm, 0);
  return { host, vm, vcpu };
}

describe('private_mem_kvm_exits_test.c', () => {
  for (const p of allProfiles()) {
    for (const order of ['slot deleted before the first read', 'first read, then slot deleted'] as const) {
      it(`private_mem_kvm_exits_test.c test_private_access_memslot_deleted (${order}) [${p.name}]`, () => {
        const { host, vm, vcpu } = protectedVm(p.name);
        vm_userspace_mem_region_add(
          vm,
          EXITS_TEST_GPA,
          EXITS_TEST_SLOT,
          EXITS_TEST_NPAGES,
          uapi.KVM_MEM_GUEST_MEMFD,
        );
        // Request to access page privately.
        vm_mem_set_private(vm, EXITS_TEST_GPA, EXITS_TEST_SIZE);
        if (order === 'first read, then slot deleted') {
          // The read is served from the guest_memfd page (zeroed), then the guest halts here.
          const first = runVcpuGetExitReason(host, vcpu);
          expect(first.ret.ok).toBe(true);
          expect(first.exit).toBe(uapi.KVM_EXIT_HLT);
          expect(host.guest(vcpu).results[0]!.data).toEqual(new Uint8Array(8));
        }
        vm_mem_region_delete(vm, EXITS_TEST_SLOT);
        // The deletion zapped the SPTE; the next read faults with no memslot: private, so not MMIO.
        expectPrivateMemoryFault(host, vcpu);
        kvm_vm_free(vm);
      });
    }

    it(`private_mem_kvm_exits_test.c test_private_access_memslot_not_private [${p.name}]`, () => {
      const { host, vm, vcpu } = protectedVm(p.name);
      // Add a non-private memslot (flags = 0); the PRIVATE attribute is still accepted.
      vm_userspace_mem_region_add(vm, EXITS_TEST_GPA, EXITS_TEST_SLOT, EXITS_TEST_NPAGES, 0);
      vm_mem_set_private(vm, EXITS_TEST_GPA, EXITS_TEST_SIZE);
      expectPrivateMemoryFault(host, vcpu);
      // KVM never converts on its own: the exit repeats until userspace changes the attribute.
      expectPrivateMemoryFault(host, vcpu);
      kvm_vm_free(vm);
    });
  }
});
