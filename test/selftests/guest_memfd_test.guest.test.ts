/**
 * Port of test_guest_memfd_guest() in tools/testing/selftests/kvm/guest_memfd_test.c (torvalds
 * 01f492e1): the guest round trip through a shared (MMAP | INIT_SHARED) guest_memfd slot. The host
 * writes 0xaa through its mapping, guest_code() checks every byte and writes 0xff, the host reads
 * 0xff back. guest_code()'s __GUEST_ASSERT loop is a read whose bytes the test checks; GUEST_DONE is
 * the end of the program. The selftest returns early unless /dev/kvm reports
 * KVM_CAP_GUEST_MEMFD_FLAGS (guest_memfd mmap, 6.18+); for earlier kernels only that is asserted.
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, uapi } from '../../src/index.js';
import {
  kvm_check_cap,
  kvm_mmap,
  kvm_munmap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  SZ_4G,
  vm_check_cap,
  vm_create_barebones,
  vm_create_guest_memfd,
  vm_set_user_memory_region2,
  vm_userspace_mem_region_add,
  vm_vcpu_add,
} from './lib/kvm_util.js';

describe('guest_memfd_test.c test_guest_memfd_guest', () => {
  for (const p of allProfiles().filter((q) => !q.gmem.mmap)) {
    it(`guest_memfd_test.c test_guest_memfd_guest: KVM_CAP_GUEST_MEMFD_FLAGS is 0, the test returns early [${p.name}]`, () => {
      const host = newHost({ kernel: p.name, platform: 'generic' });
      expect(kvm_check_cap(host, uapi.KVM_CAP_GUEST_MEMFD_FLAGS)).toBe(0);
    });
  }

  for (const p of allProfiles().filter((q) => q.gmem.mmap)) {
    it(`guest_memfd_test.c test_guest_memfd_guest [${p.name}]`, () => {
      const host = newHost({ kernel: p.name, platform: 'generic' });
      expect(kvm_check_cap(host, uapi.KVM_CAP_GUEST_MEMFD_FLAGS)).not.toBe(0);
      // __vm_create_shape_with_one_vcpu(VM_SHAPE_DEFAULT, ...): slot 0 below 1 GiB for code.
      const vm = vm_create_barebones(host);
      vm_userspace_mem_region_add(vm, 0, 0, 512, 0);
      const vcpu = vm_vcpu_add(vm, 0);
      const caps = vm_check_cap(vm, uapi.KVM_CAP_GUEST_MEMFD_FLAGS);
      expect(caps & uapi.GUEST_MEMFD_FLAG_MMAP).toBeTruthy();
      expect(caps & uapi.GUEST_MEMFD_FLAG_INIT_SHARED).toBeTruthy();

      const gpa = SZ_4G;
      const size = PAGE_SIZE;
      const fd = vm_create_guest_memfd(
        vm,
        size,
        uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED,
      );
      // A NULL userspace_addr is accepted for a guest_memfd slot.
      vm_set_user_memory_region2(vm, {
        slot: 1,
        flags: uapi.KVM_MEM_GUEST_MEMFD,
        gpa,
        size,
        hva: 0,
        guest_memfd: fd,
      });

      let mem = kvm_mmap(host, size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd);
      host.memory.write(mem, new Uint8Array(size).fill(0xaa));
      kvm_munmap(host, mem, size);

      const g = host.guest(vcpu);
      g.load([
        { op: 'read', gpa, length: size },
        { op: 'write', gpa, data: new Uint8Array(size).fill(0xff) },
      ]);
      expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT); // UCALL_DONE
      expect(g.done).toBe(true);
      expect(g.results[0]!.data).toEqual(new Uint8Array(size).fill(0xaa));

      mem = kvm_mmap(host, size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd);
      expect(host.memory.read(mem, size)).toEqual(new Uint8Array(size).fill(0xff));
      kvm_munmap(host, mem, size);
      host.close(fd);
      kvm_vm_free(vm);
    });
  }
});
