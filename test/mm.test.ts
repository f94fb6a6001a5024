/**
 * The host address space (src/kernel/mm.ts): mm/mmap.c get_unmapped_area() top-down below the mmap
 * base, as x86-64's default layout allocates, so a 4 TiB guest's RAM fits in one mapping and
 * unmapped ranges are found again; __get_unmapped_area(): a MAP_FIXED range past TASK_SIZE
 * (0x7ffffffff000) is -ENOMEM.
 */
import { describe, expect, it } from 'vitest';
import { createHost, HostFault, uapi } from '../src/index.js';
import { errnoOf } from './errno-of.js';

const TIB = 2 ** 40;
const TASK_SIZE = 0x7fff_ffff_f000;
const anon = (length: number, extra = 0, addr?: number) => ({
  length,
  prot: uapi.PROT_READ | uapi.PROT_WRITE,
  flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_NORESERVE | extra,
  ...(addr === undefined ? {} : { addr }),
});

describe('mmap address placement', () => {
  it('4 TiB of guest RAM in one anonymous mapping, then another 4 TiB below it', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = host.mmap(anon(4 * TIB));
    const b = host.mmap(anon(4 * TIB));
    expect(a + 4 * TIB).toBeLessThanOrEqual(TASK_SIZE);
    expect(b + 4 * TIB).toBeLessThan(a); // top-down, not overlapping
    host.memory.write(a + 4 * TIB - 8, [1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...host.memory.read(a + 4 * TIB - 8, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('an unmapped range is handed out again', () => {
    const host = createHost({ kernel: 'v7.0' });
    const first = host.mmap(anon(512 * 2 ** 30));
    host.munmap(first, 512 * 2 ** 30);
    expect(host.mmap(anon(512 * 2 ** 30))).toBe(first);
  });

  it('a reused gap keeps a guard page on both sides: nothing runs from one mapping into another', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = host.mmap(anon(4 * 4096));
    const b = host.mmap(anon(2 * 4096));
    host.munmap(a, 4 * 4096);
    const c = host.mmap(anon(5 * 4096));
    // Above b with a guard page after b's end, or below b with a guard page before its start.
    expect(c >= b + 3 * 4096 || c + 6 * 4096 <= b).toBe(true);
    expect(() => host.memory.write(b + 2 * 4096 - 1, [1, 2])).toThrow(HostFault);
  });

  it('MAP_FIXED: past TASK_SIZE -> ENOMEM; below it the address is taken as given', () => {
    const host = createHost({ kernel: 'v7.0' });
    expect(errnoOf(() => host.mmap(anon(2 * 4096, uapi.MAP_FIXED, TASK_SIZE - 4096)))).toBe('ENOMEM');
    expect(host.mmap(anon(4096, uapi.MAP_FIXED, TASK_SIZE - 4096))).toBe(TASK_SIZE - 4096);
  });
});

describe('signals from a file mapping', () => {
  it('SIGBUS from a guest_memfd user fault reports the faulting user address [v6.18]', () => {
    const host = createHost({ kernel: 'v6.18' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    // No INIT_SHARED: kvm_gmem_fault_user_mapping() answers VM_FAULT_SIGBUS.
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', {
      size: 4 * 4096,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP,
    });
    const m = host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_SHARED, fd: gmem });
    let fault: unknown;
    try {
      host.memory.read(m + 0x2000 + 16, 8);
    } catch (e) {
      fault = e;
    }
    expect(fault).toBeInstanceOf(HostFault);
    expect((fault as HostFault).signal).toBe('SIGBUS');
    expect((fault as HostFault).address).toBe(BigInt(m + 0x2000 + 16));
  });
});

describe('munmap argument checks (do_vmi_munmap)', () => {
  it('unaligned start, length 0, or a length running past TASK_SIZE -> EINVAL, and nothing is unmapped', () => {
    const host = createHost({ kernel: 'v7.0' });
    const a = host.mmap(anon(4 * 4096));
    host.memory.write(a, [7]);
    expect(errnoOf(() => host.munmap(a + 1, 4096))).toBe('EINVAL');
    expect(errnoOf(() => host.munmap(a, 0))).toBe('EINVAL');
    expect(errnoOf(() => host.munmap(a, 2n ** 63n))).toBe('EINVAL');
    expect(errnoOf(() => host.munmap(a, Number.NaN))).toBe('EINVAL');
    expect([...host.memory.read(a, 1)]).toEqual([7]);
    expect(host.munmap(a, 1)).toBe(0); // rounded up to one page
    expect(() => host.memory.read(a, 1)).toThrow(HostFault);
  });
});
