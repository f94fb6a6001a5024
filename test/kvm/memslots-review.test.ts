/**
 * Two memslot answers found in a review against kvm_main.c and arch/x86 uaccess_64.h:
 * - access_ok(userspace_addr, memory_size) in __kvm_set_memory_region(): up to 6.11 x86-64
 *   valid_user_address() only required the end below 2^63 ((long)sum >= 0, 6014bc27561f); 6.12-rc5
 *   (86e6b1547b3d) and 6.13 (573f45a9f9a4) bound it by USER_PTR_MAX = TASK_SIZE_MAX.
 * - KVM_CAP_MULTI_ADDRESS_SPACE: kvm_arch_nr_memslot_as_ids() on a VM (1 with private memory: no
 *   SMM address space; 2 otherwise), KVM_MAX_NR_ADDRESS_SPACES (2) on /dev/kvm.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../../src/index.js';
import { errnoOf } from '../errno-of.js';

const TASK_SIZE_MAX = 0x7fff_ffff_f000;

describe.each(['v6.8', 'v6.11', 'v6.16', 'v7.0'])('memslots on %s', (kernel) => {
  const old = kernel === 'v6.8' || kernel === 'v6.11';
  const vmOf = (type: number) => {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    return { host, kvm, vm: host.ioctl(kvm, 'KVM_CREATE_VM', type) };
  };
  const region = (userspace_addr: number | bigint) => ({
    slot: 0,
    flags: 0,
    guest_phys_addr: 0,
    memory_size: 4096,
    userspace_addr,
  });

  it(`a slot ending past TASK_SIZE_MAX but below 2^63: ${old ? 'accepted (valid_user_address: (long)sum >= 0)' : 'EINVAL (sum > USER_PTR_MAX)'}`, () => {
    const { host, vm } = vmOf(uapi.KVM_X86_DEFAULT_VM);
    const r = () => host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', region(TASK_SIZE_MAX));
    if (old) expect(r()).toBe(0);
    else expect(errnoOf(r)).toBe('EINVAL');
    // Ending exactly at TASK_SIZE_MAX is fine everywhere; reaching 2^63 is refused everywhere.
    expect(
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
        ...region(TASK_SIZE_MAX - 4096),
        slot: 1,
        guest_phys_addr: 0x10000,
      }),
    ).toBe(0);
    expect(
      errnoOf(() =>
        host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
          ...region((1n << 63n) - 4096n),
          slot: 2,
          guest_phys_addr: 0x20000,
        }),
      ),
    ).toBe('EINVAL');
  });

  it('KVM_CAP_MULTI_ADDRESS_SPACE: 2 on /dev/kvm and a default VM, 1 on a VM with private memory', () => {
    const d = vmOf(uapi.KVM_X86_DEFAULT_VM);
    expect(d.host.ioctl(d.kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_MULTI_ADDRESS_SPACE)).toBe(2);
    expect(d.host.ioctl(d.vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_MULTI_ADDRESS_SPACE)).toBe(2);
    const p = vmOf(uapi.KVM_X86_SW_PROTECTED_VM);
    expect(p.host.ioctl(p.vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_MULTI_ADDRESS_SPACE)).toBe(1);
  });
});
