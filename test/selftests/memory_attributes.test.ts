/**
 * KVM_SET_MEMORY_ATTRIBUTES: the rejections documented in Documentation/virt/kvm/api.rst (4.141
 * KVM_SET_MEMORY_ATTRIBUTES) and implemented by kvm_vm_ioctl_set_mem_attributes() in
 * virt/kvm/kvm_main.c (flags, unsupported attributes, size 0, address + size wrapping, alignment,
 * all -EINVAL), kvm_supported_mem_attributes() (PRIVATE iff !kvm || kvm_arch_has_private_mem()),
 * and the fact that attributes live in the VM (kvm->mem_attr_array), not in memslots: they survive
 * deleting and re-creating a memslot (pre_fault_memory_test.c relies on it; private_mem_kvm_exits_test.c
 * shows a private access without a guest_memfd slot exiting with KVM_EXIT_MEMORY_FAULT).
 *
 * No upstream selftest asserts the input validation; the in-flight RWX-attributes series
 * (test_input_validation) asserts the first five, which match kernel_main.c as read at 203102885.
 * Runs on every kernel profile and every VM type KVM_CAP_VM_TYPES reports (generic types on the generic
 * platform, vendor types on theirs).
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../../src/index.js';
import {
  __vm_set_memory_attributes,
  errnoOf,
  kvm_arch_has_private_mem,
  kvm_check_cap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  VM_TYPE_NAMES,
  vm_check_cap,
  vm_create_barebones_type,
  vm_mem_add,
  vm_mem_region_delete,
  vm_mem_set_private,
  vm_type_configs,
  vm_vcpu_add,
} from './lib/kvm_util.js';

const PRIVATE = uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE;
const GPA = 0xc0000000;
const SLOT = 10;
const U64_MAX = (1n << 64n) - 1n;

for (const { cfg, type } of vm_type_configs()) {
  const tag = `[${cfg.kernel}/${cfg.platform}] ${VM_TYPE_NAMES[type] ?? type} VM`;
  const supported = kvm_arch_has_private_mem(type) ? PRIVATE : 0;

  describe(`KVM_SET_MEMORY_ATTRIBUTES ${tag}`, () => {
    const withVm = (fn: (vm: ReturnType<typeof vm_create_barebones_type>) => void) => () => {
      const vm = vm_create_barebones_type(newHost(cfg), type);
      fn(vm);
      kvm_vm_free(vm);
    };

    it(
      `kvm_main.c kvm_supported_mem_attributes ${tag}: KVM_CAP_MEMORY_ATTRIBUTES is ${supported} on the VM, PRIVATE on /dev/kvm`,
      withVm((vm) => {
        expect(vm_check_cap(vm, uapi.KVM_CAP_MEMORY_ATTRIBUTES)).toBe(supported);
        expect(kvm_check_cap(vm.host, uapi.KVM_CAP_MEMORY_ATTRIBUTES)).toBe(PRIVATE);
      }),
    );

    it(
      `kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: any flags bit is EINVAL ("flags is currently not used")`,
      withVm((vm) => {
        for (let bit = 0n; bit < 64n; bit++) {
          const r = __vm_set_memory_attributes(vm, {
            address: 0,
            size: PAGE_SIZE,
            attributes: 0,
            flags: 1n << bit,
          });
          expect(errnoOf(r), `flags bit ${bit}`).toBe('EINVAL');
        }
      }),
    );

    it(
      `kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: attributes outside kvm_supported_mem_attributes() are EINVAL`,
      withVm((vm) => {
        for (let bit = 0n; bit < 64n; bit++) {
          const attr = 1n << bit;
          const r = __vm_set_memory_attributes(vm, { address: 0, size: PAGE_SIZE, attributes: attr });
          expect(errnoOf(r), `attribute bit ${bit}`).toBe(attr & BigInt(supported) ? 'ok' : 'EINVAL');
        }
        // Attributes 0 is always accepted (it clears).
        expect(errnoOf(__vm_set_memory_attributes(vm, { address: 0, size: PAGE_SIZE, attributes: 0 }))).toBe(
          'ok',
        );
      }),
    );

    it(
      `kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: size 0 and address + size wrapping are EINVAL`,
      withVm((vm) => {
        expect(
          errnoOf(__vm_set_memory_attributes(vm, { address: GPA, size: 0, attributes: supported })),
        ).toBe('EINVAL');
        expect(errnoOf(__vm_set_memory_attributes(vm, { address: 0, size: 0, attributes: 0 }))).toBe(
          'EINVAL',
        );
        const wrap = __vm_set_memory_attributes(vm, {
          address: U64_MAX - 4095n,
          size: 2n * 4096n,
          attributes: supported,
        });
        expect(errnoOf(wrap)).toBe('EINVAL');
        const wrap2 = __vm_set_memory_attributes(vm, { address: 4096, size: U64_MAX - 4095n, attributes: 0 });
        expect(errnoOf(wrap2)).toBe('EINVAL');
      }),
    );

    it(
      `kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: unaligned address or size is EINVAL`,
      withVm((vm) => {
        for (const [address, size] of [
          [1, PAGE_SIZE],
          [PAGE_SIZE - 1, PAGE_SIZE],
          [GPA + 2048, PAGE_SIZE],
          [GPA, 1],
          [GPA, PAGE_SIZE + 1],
          [GPA, PAGE_SIZE - 1],
        ] as const) {
          const r = __vm_set_memory_attributes(vm, { address, size, attributes: supported });
          expect(errnoOf(r), `address 0x${address.toString(16)} size 0x${size.toString(16)}`).toBe('EINVAL');
        }
      }),
    );

    it(
      `kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: page-aligned ranges succeed, with or without a memslot, and repeating is a no-op`,
      withVm((vm) => {
        const ok = (address: number | bigint, size: number | bigint, attributes: number) =>
          errnoOf(__vm_set_memory_attributes(vm, { address, size, attributes }));
        expect(ok(GPA, 2 << 20, supported)).toBe('ok');
        expect(ok(GPA, 2 << 20, supported)).toBe('ok'); // kvm_range_has_memory_attributes(): nothing to do
        expect(ok(GPA + PAGE_SIZE, PAGE_SIZE, 0)).toBe('ok');
        // The largest gfn range that does not wrap.
        expect(ok(0, 1n << 52n, supported)).toBe('ok');
        expect(ok(0, 1n << 52n, 0)).toBe('ok');
      }),
    );

    it(`kvm_main.c kvm_vm_ioctl_set_mem_attributes ${tag}: a struct that is not a struct is EFAULT (copy_from_user)`, () => {
      const h = newHost(cfg);
      const vm = vm_create_barebones_type(h, type);
      for (const bad of [undefined, null, 42, 'x', [1, 2]]) {
        let code = 'ok';
        try {
          h.ioctl(vm.fd, 'KVM_SET_MEMORY_ATTRIBUTES', bad);
        } catch (e) {
          code = (e as { code?: string }).code ?? 'not a SyscallError';
        }
        expect(code, String(bad)).toBe('EFAULT');
      }
      kvm_vm_free(vm);
    });

    // Attributes are per VM (kvm->mem_attr_array), independent of memslots. Observable only where a
    // private attribute changes how the guest's access is served: SW_PROTECTED VMs, whose faults take
    // privacy from the attribute.
    if (type === uapi.KVM_X86_SW_PROTECTED_VM) {
      it(`pre_fault_memory_test.c / private_mem_kvm_exits_test.c ${tag}: PRIVATE survives deleting and re-creating the memslot`, () => {
        const h = newHost(cfg);
        const vm = vm_create_barebones_type(h, type);
        const vcpu = vm_vcpu_add(vm, 0);
        vm_mem_add(vm, 0, 0, 16, 0); // the guest's code slot
        vm_mem_add(vm, GPA, SLOT, 1, uapi.KVM_MEM_GUEST_MEMFD);
        vm_mem_set_private(vm, GPA, PAGE_SIZE);
        const g = h.guest(vcpu);
        const read = () => {
          g.load([{ op: 'read', gpa: GPA, length: 8 }]);
          try {
            return h.ioctl(vcpu, 'KVM_RUN');
          } catch (e) {
            return (e as { code?: string }).code ?? 'not a SyscallError';
          }
        };
        expect(read()).toBe(0); // private, served by the guest_memfd

        // Delete the slot: a private access with no memslot is a memory-fault exit, not MMIO.
        vm_mem_region_delete(vm, SLOT);
        expect(read()).toBe('EFAULT');
        let run = h.kvmRun(vcpu);
        expect(run.exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
        expect(run.memory_fault?.flags).toBe(BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE));
        expect(run.memory_fault?.gpa).toBe(BigInt(GPA));
        expect(run.memory_fault?.size).toBe(4096n);

        // Re-create it without a guest_memfd: the attribute is still PRIVATE, so the access still exits.
        vm_mem_add(vm, GPA, SLOT, 1, 0);
        expect(read()).toBe('EFAULT');
        run = h.kvmRun(vcpu);
        expect(run.exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
        expect(run.memory_fault?.flags).toBe(BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE));

        // Re-create it with a new guest_memfd: the private read succeeds and sees a zeroed page.
        vm_mem_region_delete(vm, SLOT);
        vm_mem_add(vm, GPA, SLOT, 1, uapi.KVM_MEM_GUEST_MEMFD);
        expect(read()).toBe(0);
        expect(Array.from(g.results[0]?.data ?? [])).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
        kvm_vm_free(vm);
      });
    }
  });
}
