/**
 * guest_memfd preparation semantics per kernel version: what a guest_memfd page holds (host
 * garbage, zeroes, data), whether its folio is up to date, and when the arch prepare hook
 * (kvm_arch_gmem_prepare) runs, after fallocate, a guest fault, KVM_PRE_FAULT_MEMORY, a punch-hole
 * and a conversion without punch-hole. Expected values follow the kernel source of each version
 * (virt/kvm/guest_memfd.c): v6.8 (a7800aa80ea4), v6.11-rc1 (kvm-coco-hooks state), v6.11..v6.19
 * (lazy preparation, b85524314a3d), v7.0 (preparation tracking removed, 8622ef05709f).
 *
 * A SW_PROTECTED VM has no prepare hook of its own; the tests install a counting one on the VM's
 * arch ops (as SNP's sev_gmem_prepare would be), so the hook's call points are observable.
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, SyscallError, uapi } from '../src/index.js';
import { kerr } from '../src/kernel/errors.js';
import type { Folio, GmemFile } from '../src/kernel/kvm/guest-memfd.js';
import type { Vm, VmFile } from '../src/kernel/kvm/vm.js';

const GPA = 1 << 30;
const NPAGES = 4;

interface Env {
  host: Host;
  vm: Vm;
  vmfd: number;
  vcpu: number;
  gmem: number;
  hookCalls: number[];
  failHook: boolean;
}

function env(kernel: string): Env {
  const host = createHost({ kernel });
  const kvm = host.open('/dev/kvm');
  const vmfd = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const vm = (host.fds.lookup(vmfd) as VmFile).vm;
  const gmem = host.ioctl(vmfd, 'KVM_CREATE_GUEST_MEMFD', { size: NPAGES * 4096, flags: 0 });
  const hva = host.mmap({ length: NPAGES * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vmfd, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 1,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: GPA,
    memory_size: NPAGES * 4096,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vmfd, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: GPA,
    size: NPAGES * 4096,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const vcpu = host.ioctl(vmfd, 'KVM_CREATE_VCPU', 0);
  const e: Env = { host, vm, vmfd, vcpu, gmem, hookCalls: [], failHook: false };
  vm.arch.gmemPrepare = (gfn: number) => {
    e.hookCalls.push(gfn);
    if (e.failHook) throw kerr('ENOENT', 'test hook: prepare failed');
  };
  return e;
}

function folio(e: Env, index: number): Folio | undefined {
  return (e.host.fds.lookup(e.gmem) as GmemFile).inode.folios.get(index);
}

function guestRead(e: Env, page: number): Uint8Array {
  e.host.guest(e.vcpu).load([{ op: 'read', gpa: GPA + page * 4096, length: 16 }]);
  e.host.ioctl(e.vcpu, 'KVM_RUN');
  return e.host.guest(e.vcpu).results[0]!.data!;
}

function guestWrite(e: Env, page: number, byte: number): void {
  e.host.guest(e.vcpu).load([{ op: 'write', gpa: GPA + page * 4096, data: new Uint8Array(16).fill(byte) }]);
  e.host.ioctl(e.vcpu, 'KVM_RUN');
}

function preFault(e: Env, page: number): void {
  e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: GPA + page * 4096, size: 4096, flags: 0 });
}

function fallocate(e: Env, page: number, punch = false): void {
  const mode = uapi.FALLOC_FL_KEEP_SIZE | (punch ? uapi.FALLOC_FL_PUNCH_HOLE : 0);
  e.host.fallocate(e.gmem, mode, page * 4096, 4096);
}

function setAttr(e: Env, page: number, priv: boolean): void {
  e.host.ioctl(e.vmfd, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: GPA + page * 4096,
    size: 4096,
    attributes: priv ? uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
    flags: 0,
  });
}

const state = (f: Folio | undefined) => (f ? { content: f.content, uptodate: f.uptodate } : 'absent');

describe('preparation after fallocate(KEEP_SIZE) (kvm_gmem_allocate -> kvm_gmem_get_folio)', () => {
  it('v6.8: kvm_gmem_get_folio() clears and marks up to date ("up to date = zeroed"); no arch hook exists', () => {
    const e = env('v6.8');
    fallocate(e, 0);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
    expect(e.hookCalls).toEqual([]);
  });
  it('v6.11-rc1: get_folio(prepare=true) clears, marks up to date, then runs the hook for every bound VM', () => {
    const e = env('v6.11-rc1');
    fallocate(e, 0);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
    expect(e.hookCalls).toEqual([GPA >> 12]);
  });
  for (const k of ['v6.11', 'v6.16', 'v6.18', 'v6.19', 'v7.0']) {
    it(`${k}: fallocate only allocates (b85524314a3d): not cleared, not up to date, no hook`, () => {
      const e = env(k);
      fallocate(e, 0);
      expect(state(folio(e, 0))).toEqual({ content: 'garbage', uptodate: false });
      expect(e.hookCalls).toEqual([]);
    });
  }
});

describe('preparation on a private guest fault (kvm_mmu_faultin_pfn_gmem -> kvm_gmem_get_pfn)', () => {
  it('v6.8: the page is cleared and marked up to date by kvm_gmem_get_folio(); no hook', () => {
    const e = env('v6.8');
    expect(guestRead(e, 0)).toEqual(new Uint8Array(16));
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
    expect(e.hookCalls).toEqual([]);
  });
  for (const k of ['v6.11-rc1', 'v6.11', 'v6.16', 'v6.18', 'v6.19', 'v7.0']) {
    it(`${k}: the first fault clears, runs the hook once and marks up to date`, () => {
      const e = env(k);
      fallocate(e, 0); // 6.11+: a garbage folio that the fault must clear
      const hooksAfterFallocate = e.hookCalls.length;
      expect(guestRead(e, 0)).toEqual(new Uint8Array(16));
      expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
      expect(e.hookCalls.length - hooksAfterFallocate).toBe(1);
    });
  }
});

describe('preparation by KVM_PRE_FAULT_MEMORY (kvm_tdp_map_page -> kvm_gmem_get_pfn)', () => {
  it('v6.8: no KVM_PRE_FAULT_MEMORY: kvm_vcpu_ioctl() default -> x86 kvm_arch_vcpu_ioctl() -> EINVAL; the folio is untouched', () => {
    const e = env('v6.8');
    let err: unknown;
    try {
      preFault(e, 0);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe('EINVAL');
    expect(folio(e, 0)).toBeUndefined();
  });
  // The seed case: a pre-fault marks the folio up to date in every version that has the ioctl;
  // in 6.11..6.19 "up to date" means prepared, which is what made a later populate fail -EEXIST.
  for (const k of ['v6.11-rc1', 'v6.11', 'v6.16', 'v6.18', 'v6.19', 'v7.0']) {
    it(`${k}: a pre-fault of a private gfn clears the page, runs the hook and marks the folio up to date`, () => {
      const e = env(k);
      preFault(e, 1);
      expect(state(folio(e, 1))).toEqual({ content: 'zero', uptodate: true });
      expect(e.hookCalls).toEqual([(GPA >> 12) + 1]);
    });
  }
  // A second pre-fault of the mapped gfn: the error code has no PFERR_PRESENT_MASK, so
  // page_fault_can_be_fast() is false (A/D bits on) and the fault reaches kvm_gmem_get_pfn() before
  // tdp_mmu_map_handle_target_level() finds the same SPTE (RET_PF_SPURIOUS, success).
  // v6.11-rc1: kvm_gmem_get_folio(prepare=true) calls kvm_gmem_prepare_folio() on every get_pfn;
  // v7.0 (8622ef05709f): kvm_gmem_get_pfn() calls it unconditionally; 6.11..6.19: only when the
  // folio is not up to date (is_prepared), so not again.
  const secondPreFaultHooks: Array<[string, number]> = [
    ['v6.11-rc1', 2],
    ['v6.11', 1],
    ['v6.16', 1],
    ['v6.18', 1],
    ['v6.19', 1],
    ['v7.0', 2],
  ];
  for (const [k, hooks] of secondPreFaultHooks) {
    it(`${k}: a second pre-fault of the mapped gfn goes through kvm_gmem_get_pfn: ${hooks} hook call(s), still mapped once`, () => {
      const e = env(k);
      preFault(e, 1);
      const spte = e.vm.mmu.sptes.get((GPA >> 12) + 1);
      expect(spte?.private).toBe(true);
      preFault(e, 1);
      expect(e.hookCalls).toEqual(new Array(hooks).fill((GPA >> 12) + 1));
      // RET_PF_SPURIOUS: the SPTE is the one the first pre-fault installed.
      expect(e.vm.mmu.sptes.get((GPA >> 12) + 1)).toBe(spte);
      expect(state(folio(e, 1))).toEqual({ content: 'zero', uptodate: true });
    });
  }
  it('v7.0: a guest read of a pre-faulted gfn does not fault at all (the hardware walk succeeds): no get_pfn', () => {
    const e = env('v7.0');
    preFault(e, 1);
    expect(guestRead(e, 1)).toEqual(new Uint8Array(16));
    // v7.0 would run the hook on any get_pfn: one call means the guest access never reached it.
    expect(e.hookCalls.length).toBe(1);
  });
});

describe('conversion without punch-hole: private -> shared -> private re-faults the same folio', () => {
  // kvm_arch_pre_set_memory_attributes() zaps the SPTE; the folio stays in the page cache.
  it('v6.8: up to date (zeroed): the guest data survives, nothing is cleared again', () => {
    const e = env('v6.8');
    guestWrite(e, 0, 0x5a);
    setAttr(e, 0, false);
    setAttr(e, 0, true);
    expect(guestRead(e, 0)).toEqual(new Uint8Array(16).fill(0x5a));
  });
  it('v6.11-rc1: data survives (up to date), but the hook runs again on every get_pfn', () => {
    const e = env('v6.11-rc1');
    guestWrite(e, 0, 0x5a);
    setAttr(e, 0, false);
    setAttr(e, 0, true);
    expect(guestRead(e, 0)).toEqual(new Uint8Array(16).fill(0x5a));
    expect(e.hookCalls.length).toBe(2);
  });
  for (const k of ['v6.11', 'v6.16', 'v6.18', 'v6.19']) {
    it(`${k}: up to date = prepared: no second clear, no second hook (kvm_gmem_get_pfn skips prepare)`, () => {
      const e = env(k);
      guestWrite(e, 0, 0x5a);
      setAttr(e, 0, false);
      setAttr(e, 0, true);
      expect(guestRead(e, 0)).toEqual(new Uint8Array(16).fill(0x5a));
      expect(e.hookCalls.length).toBe(1);
    });
  }
  it('v7.0: up to date = zeroed: data survives, the hook runs on every fault (SNP relies on the RMP)', () => {
    const e = env('v7.0');
    guestWrite(e, 0, 0x5a);
    setAttr(e, 0, false);
    setAttr(e, 0, true);
    expect(guestRead(e, 0)).toEqual(new Uint8Array(16).fill(0x5a));
    expect(e.hookCalls.length).toBe(2);
  });
});

describe('punch-hole (kvm_gmem_punch_hole): the folio and its state go away in every version', () => {
  for (const k of ['v6.8', 'v6.11-rc1', 'v6.11', 'v6.16', 'v6.18', 'v6.19', 'v7.0']) {
    it(`${k}: after PUNCH_HOLE the folio is absent and the next fault gets a fresh zeroed folio`, () => {
      const e = env(k);
      guestWrite(e, 2, 0x77);
      const before = folio(e, 2)!;
      expect(before.content).toBe('data');
      fallocate(e, 2, true);
      expect(folio(e, 2)).toBeUndefined();
      // The SPTE was zapped by kvm_gmem_invalidate_begin(): the read faults and gets a new folio.
      expect(guestRead(e, 2)).toEqual(new Uint8Array(16));
      const after = folio(e, 2)!;
      expect(after.gen).not.toBe(before.gen);
      expect(state(after)).toEqual({ content: 'zero', uptodate: true });
    });
  }
});

describe('a failing arch prepare hook (kvm_arch_gmem_prepare returns an error)', () => {
  it('v6.11-rc1: the folio was marked up to date before the hook and stays so (fixed by d04c77d23122)', () => {
    const e = env('v6.11-rc1');
    e.failHook = true;
    expect(() => preFault(e, 0)).toThrow(/ENOENT/);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
  });
  it('v6.11: cleared but not marked: the next get_pfn clears and calls the hook again', () => {
    const e = env('v6.11');
    e.failHook = true;
    expect(() => preFault(e, 0)).toThrow(/ENOENT/);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: false });
    e.failHook = false;
    preFault(e, 0);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
    expect(e.hookCalls.length).toBe(2);
  });
  it('v7.0: zeroed and up to date before the hook; a failure leaves it so, the retry only re-runs the hook', () => {
    const e = env('v7.0');
    e.failHook = true;
    expect(() => guestRead(e, 0)).toThrow(/ENOENT/);
    // kvm_mmu_faultin_pfn_gmem(): a get_pfn error is a memory-fault exit with that errno.
    expect(e.host.kvmRun(e.vcpu).exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
    expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
    e.failHook = false;
    expect(guestRead(e, 0)).toEqual(new Uint8Array(16));
    expect(e.hookCalls.length).toBe(2);
  });
});

describe('hwpoison (kvm_gmem_error_folio, then __kvm_gmem_get_pfn)', () => {
  for (const k of ['v6.8', 'v6.11', 'v7.0']) {
    it(`${k}: a poisoned page is zapped but kept; the next private fault is -EHWPOISON with a memory-fault exit`, () => {
      const e = env(k);
      guestRead(e, 3);
      e.host.memoryFailure(e.gmem, 3 * 4096);
      expect(folio(e, 3)?.hwpoison).toBe(true);
      expect(() => guestRead(e, 3)).toThrow(/EHWPOISON/);
      const run = e.host.kvmRun(e.vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
      expect(run.memory_fault).toEqual({
        flags: BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE),
        gpa: BigInt(GPA + 3 * 4096),
        size: 4096n,
      });
    });
  }
});

describe('a host fault through a guest_memfd mmap (kvm_gmem_fault_user_mapping, 6.18+ INIT_SHARED)', () => {
  // 6.18/6.19: the user fault clears a folio that is not up to date and marks it prepared
  // (kvm_gmem_mark_prepared) without the arch hook; a later get_pfn finds it prepared and skips the
  // hook. 7.0: the user fault clears and folio_mark_uptodate(); kvm_gmem_get_pfn() runs the hook on
  // every call regardless.
  function sharedEnv(kernel: string) {
    const host = createHost({ kernel });
    const vmfd = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vm = (host.fds.lookup(vmfd) as VmFile).vm;
    const flags = uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED;
    const gmem = host.ioctl(vmfd, 'KVM_CREATE_GUEST_MEMFD', { size: NPAGES * 4096, flags });
    const map = host.mmap({ length: NPAGES * 4096, prot: 3, flags: uapi.MAP_SHARED, fd: gmem });
    host.ioctl(vmfd, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 1,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: GPA,
      memory_size: NPAGES * 4096,
      userspace_addr: map,
      guest_memfd: gmem,
      guest_memfd_offset: 0,
    });
    const vcpu = host.ioctl(vmfd, 'KVM_CREATE_VCPU', 0);
    const e: Env = { host, vm, vmfd, vcpu, gmem, hookCalls: [], failHook: false };
    vm.arch.gmemPrepare = (gfn: number) => {
      e.hookCalls.push(gfn);
    };
    return { e, map };
  }
  for (const [k, hooksOnGuestFault] of [
    ['v6.18', 0],
    ['v6.19', 0],
    ['v7.0', 1],
  ] as const) {
    it(`${k}: the host read clears and marks the folio up to date with no hook; the guest fault then calls it ${hooksOnGuestFault} time(s)`, () => {
      const { e, map } = sharedEnv(k);
      expect(folio(e, 0)).toBeUndefined();
      expect(e.host.memory.read(map, 16)).toEqual(new Uint8Array(16));
      expect(state(folio(e, 0))).toEqual({ content: 'zero', uptodate: true });
      expect(e.hookCalls).toEqual([]);
      expect(guestRead(e, 0)).toEqual(new Uint8Array(16));
      expect(e.hookCalls.length).toBe(hooksOnGuestFault);
    });
  }
});
