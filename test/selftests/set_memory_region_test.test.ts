/**
 * Port of tools/testing/selftests/kvm/set_memory_region_test.c, every case the model can express, on
 * every kernel profile (the SW_PROTECTED cases need that VM type, which every profile has).
 *
 * Sources: kvm-x86/linux set_memory_region_test.c at 36a062568ea8 (newest examined) and the v6.8-era
 * copy; virt/kvm/kvm_main.c kvm_vm_ioctl() (v1 flags), check_memory_region_flags(),
 * kvm_set_memory_region(), kvm_vm_ioctl_set_memory_region(); virt/kvm/guest_memfd.c kvm_gmem_bind()
 * at torvalds 01f492e1817e; arch/x86/include/asm/kvm_host.h KVM_INTERNAL_MEM_SLOTS (3).
 *
 * Left out:
 * - test_move_memory_region / test_delete_memory_region run a vCPU thread against a memslot being
 *   moved or deleted; what the guest sees inside the race window is timing-dependent ("may or may not
 *   trigger MMIO"). Their defined end states are expressed sequentially below (guest read of a deleted
 *   slot is MMIO; a recreated slot reads its new, zeroed backing). The final step (deleting slot 0
 *   holding code and page tables -> SHUTDOWN or INTERNAL_ERROR) needs guest page tables, which the
 *   model's guest does not have.
 * - test_mmio_during_vectoring: IDT/#GP event delivery, not memory state.
 * - KVM_X86_QUIRK_SLOT_ZAP_ALL loops: zapping granularity is not observable in the model.
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, kernels, uapi } from '../../src/index.js';
import { violationOf } from '../errno-of.js';
import {
  __vm_set_user_memory_region,
  __vm_set_user_memory_region2,
  errnoOf,
  kvm_check_cap,
  kvm_memfd_alloc,
  kvm_mmap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  profileOf,
  vm_check_cap,
  vm_create_barebones,
  vm_create_barebones_type,
  vm_create_guest_memfd,
  vm_mem_add,
  vm_mem_region_delete,
  vm_set_user_memory_region,
  vm_set_user_memory_region2,
  vm_vcpu_add,
} from './lib/kvm_util.js';

const MEM_REGION_SIZE = 0x200000;
const MEM_REGION_GPA = 0xc0000000;
const MEM_REGION_SLOT = 10;
const { KVM_MEM_GUEST_MEMFD: GMEM, KVM_MEM_LOG_DIRTY_PAGES: DIRTY, KVM_MEM_READONLY: RO } = uapi;
/** x86 KVM_USER_MEM_SLOTS: KVM_MEM_SLOTS_NUM (SHRT_MAX) - KVM_INTERNAL_MEM_SLOTS (3). */
const X86_USER_MEM_SLOTS = 32767 - 3;

const host = (kernel: string): Host => newHost({ kernel, platform: 'generic' });

for (const kernel of kernels()) {
  const tag = `[${kernel}]`;
  const profile = profileOf(kernel);

  describe(`set_memory_region_test.c ${tag}`, () => {
    it(`set_memory_region_test.c test_zero_memory_regions ${tag}: KVM_RUN with no memslot -> KVM_EXIT_INTERNAL_ERROR`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones(h);
      const vcpu = vm_vcpu_add(vm, 0);
      // Without it a shadow-paging host has no MMU pages yet (-ENOSPC; test/kvm/run-entry.test.ts).
      expect(h.ioctl(vm.fd, 'KVM_SET_NR_MMU_PAGES', 64)).toBe(0);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(h.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_INTERNAL_ERROR);
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_zero_memory_regions ${tag}, on a host without TDP: the same exit`, () => {
      const h = createHost({ kernel, platform: 'generic', tdp: false });
      const vm = vm_create_barebones(h);
      const vcpu = vm_vcpu_add(vm, 0);
      expect(h.ioctl(vm.fd, 'KVM_SET_NR_MMU_PAGES', 64)).toBe(0);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(h.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_INTERNAL_ERROR);
    });

    it(`set_memory_region_test.c test_invalid_memory_region_flags ${tag}`, () => {
      const h = host(kernel);
      let supported = DIRTY | RO; // x86
      const v2_only = GMEM;
      const vm =
        kvm_check_cap(h, uapi.KVM_CAP_VM_TYPES) & (1 << uapi.KVM_X86_SW_PROTECTED_VM)
          ? vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM)
          : vm_create_barebones(h);
      if (kvm_check_cap(h, uapi.KVM_CAP_MEMORY_ATTRIBUTES) & uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        supported |= GMEM;
      expect(supported & GMEM).toBe(GMEM);
      for (let i = 0; i < 32; i++) {
        const bit = (1 << i) >>> 0;
        if (supported & bit && !(v2_only & bit)) continue;
        expect(
          errnoOf(__vm_set_user_memory_region(vm, 0, bit, 0, MEM_REGION_SIZE, 0)),
          `v1 0x${bit.toString(16)}`,
        ).toBe('EINVAL');
        if (supported & bit) continue;
        expect(
          errnoOf(
            __vm_set_user_memory_region2(vm, { slot: 0, flags: bit, gpa: 0, size: MEM_REGION_SIZE, hva: 0 }),
          ),
          `v2 0x${bit.toString(16)}`,
        ).toBe('EINVAL');
      }
      const guest_memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE, 0);
      // check_memory_region_flags(): no dirty logging of guest_memfd, no read-only guest_memfd slot.
      for (const flags of [DIRTY | GMEM, RO | GMEM]) {
        const r = __vm_set_user_memory_region2(vm, {
          slot: 0,
          flags,
          gpa: 0,
          size: MEM_REGION_SIZE,
          hva: 0,
          guest_memfd,
        });
        expect(errnoOf(r), `flags 0x${flags.toString(16)}`).toBe('EINVAL');
      }
      h.close(guest_memfd);
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_add_max_memory_regions ${tag}`, () => {
      const h = host(kernel);
      const max_mem_slots = kvm_check_cap(h, uapi.KVM_CAP_NR_MEMSLOTS);
      expect(max_mem_slots).toBe(X86_USER_MEM_SLOTS);
      const vm = vm_create_barebones(h);
      const len = max_mem_slots * MEM_REGION_SIZE;
      const mem = kvm_mmap(
        h,
        len,
        uapi.PROT_READ | uapi.PROT_WRITE,
        uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_NORESERVE,
      );
      for (let slot = 0; slot < max_mem_slots; slot++) {
        vm_set_user_memory_region(
          vm,
          slot,
          0,
          slot * MEM_REGION_SIZE,
          MEM_REGION_SIZE,
          mem + slot * MEM_REGION_SIZE,
        );
      }
      const mem_extra = kvm_mmap(
        h,
        MEM_REGION_SIZE,
        uapi.PROT_READ | uapi.PROT_WRITE,
        uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
      );
      const r = __vm_set_user_memory_region(
        vm,
        max_mem_slots,
        0,
        max_mem_slots * MEM_REGION_SIZE,
        MEM_REGION_SIZE,
        mem_extra,
      );
      expect(errnoOf(r)).toBe('EINVAL');
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_add_private_memory_region ${tag}`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM);
      const invalid = (memfd: number, offset: number): string =>
        errnoOf(
          __vm_set_user_memory_region2(vm, {
            slot: MEM_REGION_SLOT,
            flags: GMEM,
            gpa: MEM_REGION_GPA,
            size: MEM_REGION_SIZE,
            hva: 0,
            guest_memfd: memfd,
            guest_memfd_offset: offset,
          }),
        );
      // kvm_gmem_bind(): a valid fd that is not a guest_memfd is -EINVAL, not -EBADF.
      expect(invalid(vm.kvm_fd, 0), 'KVM fd should fail').toBe('EINVAL');
      expect(invalid(vm.fd, 0), "VM's fd should fail").toBe('EINVAL');
      let memfd = kvm_memfd_alloc(h, MEM_REGION_SIZE);
      expect(invalid(memfd, 0), 'Regular memfd() should fail').toBe('EINVAL');
      h.close(memfd);

      const vm2 = vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM);
      memfd = vm_create_guest_memfd(vm2, MEM_REGION_SIZE, 0);
      expect(invalid(memfd, 0), "Other VM's guest_memfd() should fail").toBe('EINVAL');
      vm_set_user_memory_region2(vm2, {
        slot: MEM_REGION_SLOT,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
        guest_memfd: memfd,
      });
      h.close(memfd); // closing a bound guest_memfd is fine
      kvm_vm_free(vm2);

      memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE, 0);
      const notEinval: number[] = [];
      for (let i = 1; i < PAGE_SIZE; i++) if (invalid(memfd, i) !== 'EINVAL') notEinval.push(i);
      expect(notEinval, 'Unaligned offset should fail').toEqual([]);
      // userspace_addr 0 is accepted for a guest_memfd slot.
      vm_set_user_memory_region2(vm, {
        slot: MEM_REGION_SLOT,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
        guest_memfd: memfd,
      });
      h.close(memfd);
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_add_overlapping_private_memory_regions ${tag}`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM);
      const memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE * 5, 0);
      const add = (slot: number, gpa: number, size: number, off: number) =>
        __vm_set_user_memory_region2(vm, {
          slot,
          flags: GMEM,
          gpa,
          size,
          hva: 0,
          guest_memfd: memfd,
          guest_memfd_offset: off,
        });
      expect(errnoOf(add(MEM_REGION_SLOT, MEM_REGION_GPA, MEM_REGION_SIZE * 2, 0))).toBe('ok');
      expect(
        errnoOf(add(MEM_REGION_SLOT + 1, MEM_REGION_GPA * 2, MEM_REGION_SIZE * 2, MEM_REGION_SIZE * 2)),
      ).toBe('ok');
      // Deleting ignores the guest_memfd fields (flags still GUEST_MEMFD, fd -1).
      vm_set_user_memory_region2(vm, {
        slot: MEM_REGION_SLOT,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: 0,
        hva: 0,
        guest_memfd: -1,
      });
      // Overlap in guest_memfd file offsets only: kvm_gmem_bind() returns its initial r = -EINVAL for
      // an overlapping binding (torvalds 01f492e1817e and v6.8). The selftest's own EEXIST cases are
      // the GPA overlaps below (slot 10 is deleted, so its file range is free).
      expect(errnoOf(add(MEM_REGION_SLOT, MEM_REGION_GPA, MEM_REGION_SIZE * 2, MEM_REGION_SIZE))).toBe(
        'EINVAL',
      );
      expect(errnoOf(add(MEM_REGION_SLOT, MEM_REGION_GPA, MEM_REGION_SIZE * 2, MEM_REGION_SIZE * 3))).toBe(
        'EINVAL',
      );
      // Overlap in GPA space: kvm_check_memslot_overlap() -> -EEXIST, before any binding.
      expect(
        errnoOf(add(MEM_REGION_SLOT, MEM_REGION_GPA * 2 - MEM_REGION_SIZE, MEM_REGION_SIZE * 2, 0)),
      ).toBe('EEXIST');
      expect(
        errnoOf(add(MEM_REGION_SLOT, MEM_REGION_GPA * 2 + MEM_REGION_SIZE, MEM_REGION_SIZE * 2, 0)),
      ).toBe('EEXIST');
      h.close(memfd);
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_delete_memory_region ${tag} (sequential): a deleted slot is MMIO, a recreated one reads its new backing`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones(h);
      const vcpu = vm_vcpu_add(vm, 0);
      // vm_create_with_one_vcpu(): slot 0 holds the guest's code and page tables.
      vm_mem_add(vm, 0, 0, 512, 0);
      const region = vm_mem_add(vm, MEM_REGION_GPA, MEM_REGION_SLOT, MEM_REGION_SIZE / PAGE_SIZE, 0);
      h.memory.write(region.hva, [1, 0, 0, 0, 0, 0, 0, 0]);
      const g = h.guest(vcpu);
      g.load([{ op: 'read', gpa: MEM_REGION_GPA, length: 8 }]);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(h.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(Array.from(g.results[0]?.data ?? [])).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);

      vm_mem_region_delete(vm, MEM_REGION_SLOT);
      g.load([{ op: 'read', gpa: MEM_REGION_GPA, length: 8 }]);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      const run = h.kvmRun(vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_MMIO);
      expect(run.mmio?.is_write).toBe(0);
      expect(run.mmio?.len).toBe(8);
      expect(run.mmio?.phys_addr).toBe(BigInt(MEM_REGION_GPA));

      // Recreate the region: the guest sees the new (zeroed) backing, not the old data.
      vm_mem_add(vm, MEM_REGION_GPA, MEM_REGION_SLOT, MEM_REGION_SIZE / PAGE_SIZE, 0);
      g.load([{ op: 'read', gpa: MEM_REGION_GPA, length: 8 }]);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(h.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
      expect(Array.from(g.results[0]?.data ?? [])).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      kvm_vm_free(vm);
    });

    it(`set_memory_region_test.c test_move_memory_region ${tag} (sequential): after a MOVE the gpa->hva translation follows the slot`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones(h);
      const vcpu = vm_vcpu_add(vm, 0);
      const region = vm_mem_add(vm, MEM_REGION_GPA, MEM_REGION_SLOT, MEM_REGION_SIZE / PAGE_SIZE, 0);
      h.memory.write(region.hva, [1]);
      h.memory.write(region.hva + PAGE_SIZE, [2]);
      // vm_mem_region_move(): same slot, hva and size, new base GPA (misaligned by one page).
      vm_set_user_memory_region(
        vm,
        MEM_REGION_SLOT,
        0,
        MEM_REGION_GPA - PAGE_SIZE,
        MEM_REGION_SIZE,
        region.hva,
      );
      const g = h.guest(vcpu);
      g.load([{ op: 'read', gpa: MEM_REGION_GPA, length: 1 }]);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(Array.from(g.results[0]?.data ?? [])).toEqual([2]);
      vm_set_user_memory_region(vm, MEM_REGION_SLOT, 0, MEM_REGION_GPA, MEM_REGION_SIZE, region.hva);
      g.load([{ op: 'read', gpa: MEM_REGION_GPA, length: 1 }]);
      expect(h.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      expect(Array.from(g.results[0]?.data ?? [])).toEqual([1]);
      kvm_vm_free(vm);
    });

    // kvm_set_memory_region() rules that no selftest case isolates but that decide its return value.
    it(`kvm_main.c kvm_set_memory_region ${tag}: a guest_memfd memslot is immutable (re-issue with GUEST_MEMFD: EINVAL)`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM);
      const memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE * 2, 0);
      const args = {
        slot: MEM_REGION_SLOT,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
        guest_memfd: memfd,
      };
      vm_set_user_memory_region2(vm, args);
      expect(errnoOf(__vm_set_user_memory_region2(vm, args))).toBe('EINVAL');
      expect(errnoOf(__vm_set_user_memory_region2(vm, { ...args, gpa: MEM_REGION_GPA * 2 }))).toBe('EINVAL');
      kvm_vm_free(vm);
      h.close(memfd);
    });

    const toggle = profile.memslots.rejectGmemFlagToggle
      ? 'EINVAL (9935df5333aa, 6.19+)'
      : 'accepted as a FLAGS_ONLY change (before 6.19)';
    it(`kvm_main.c kvm_set_memory_region ${tag}: clearing KVM_MEM_GUEST_MEMFD on an existing slot is ${toggle}`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones_type(h, uapi.KVM_X86_SW_PROTECTED_VM);
      const memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE, 0);
      vm_set_user_memory_region2(vm, {
        slot: MEM_REGION_SLOT,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
        guest_memfd: memfd,
      });
      const r = __vm_set_user_memory_region2(vm, {
        slot: MEM_REGION_SLOT,
        flags: 0,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
      });
      expect(errnoOf(r)).toBe(profile.memslots.rejectGmemFlagToggle ? 'EINVAL' : 'ok');
      kvm_vm_free(vm);
      if (profile.memslots.rejectGmemFlagToggle) h.close(memfd);
      else {
        // The accepted change freed the old slot without kvm_gmem_unbind(): kvm_gmem_release()
        // walks the file's bindings into it (the use-after-free 9935df5333aa fixed).
        expect(violationOf(() => h.close(memfd))?.invariant).toBe('no-freed-memslot-binding');
      }
    });

    it(`kvm_main.c kvm_set_memory_region ${tag}: more than KVM_MEM_MAX_NR_PAGES pages is EINVAL; MAXPHYADDR bound is kvm_arch_prepare_memory_region's EINVAL`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones(h);
      const tooBig = 2n ** 31n * 4096n; // (1 << 31) pages > KVM_MEM_MAX_NR_PAGES
      expect(errnoOf(__vm_set_user_memory_region(vm, 0, 0, 0, tooBig, 0))).toBe('EINVAL');
      // Last gfn beyond kvm_mmu_max_gfn() (MAXPHYADDR 52 in the model): -EINVAL.
      expect(errnoOf(__vm_set_user_memory_region(vm, 0, 0, 2n ** 52n, 4096, 0))).toBe('EINVAL');
      // Deleting a slot that does not exist: -EINVAL.
      expect(errnoOf(__vm_set_user_memory_region(vm, 5, 0, 0, 0, 0))).toBe('EINVAL');
      kvm_vm_free(vm);
    });

    const anyVm = profile.memslots.gmemOnAnyVm;
    it(`kvm_main.c check_memory_region_flags ${tag}: KVM_MEM_GUEST_MEMFD on a DEFAULT VM is ${anyVm ? 'valid (CONFIG_KVM_GUEST_MEMFD, 6.18+)' : 'EINVAL (kvm_arch_has_private_mem)'}`, () => {
      const h = host(kernel);
      const vm = vm_create_barebones(h);
      expect(vm_check_cap(vm, uapi.KVM_CAP_GUEST_MEMFD)).toBe(anyVm ? 1 : 0);
      const memfd = vm_create_guest_memfd(vm, MEM_REGION_SIZE, 0);
      const r = __vm_set_user_memory_region2(vm, {
        slot: 1,
        flags: GMEM,
        gpa: MEM_REGION_GPA,
        size: MEM_REGION_SIZE,
        hva: 0,
        guest_memfd: memfd,
      });
      expect(errnoOf(r)).toBe(anyVm ? 'ok' : 'EINVAL');
      kvm_vm_free(vm);
      h.close(memfd);
    });
  });
}
