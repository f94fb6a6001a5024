/**
 * The modelled fault path against the kernel source, where versions differ:
 * - zap filters (kvm_gfn_range.attr_filter, TDX MMU prep, 6.14:
 *   <20240718211230.1492011-3-rick.p.edgecombe@intel.com>): arch/x86/kvm/mmu/mmu.c
 *   kvm_arch_pre_set_memory_attributes() zaps KVM_FILTER_SHARED when the range becomes private and
 *   KVM_FILTER_PRIVATE otherwise; virt/kvm/guest_memfd.c kvm_gmem_invalidate_begin() (punch-hole,
 *   kvm_gmem_release, kvm_gmem_error_folio) zaps KVM_FILTER_PRIVATE (6.18+:
 *   kvm_gmem_get_invalidate_filter()). Only a TD's mirror root tells the kinds apart.
 * - KVM_PRE_FAULT_MEMORY of a mapped gfn: no PFERR_PRESENT_MASK in the error code, so
 *   page_fault_can_be_fast() is false with A/D bits; the fault runs kvm_mmu_faultin_pfn() (the
 *   KVM_MEMSLOT_INVALID check) and ends RET_PF_SPURIOUS.
 * - kvm_arch_vcpu_pre_fault_memory(): kvm_is_gfn_alias() -> -EINVAL after the pre_fault_allowed
 *   check (8046d29dde17, 6.16-rc2).
 * - kvm_vcpu_ioctl() default -> x86 kvm_arch_vcpu_ioctl() default: -EINVAL.
 * - kvm_gmem_release(): slot->gmem.file = NULL for every binding, then the zap; a later private
 *   fault gets -EFAULT from kvm_gmem_get_pfn() as a KVM_EXIT_MEMORY_FAULT.
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, createHost, type Host, SyscallError, uapi } from '../src/index.js';
import { tdxVmOf } from '../src/kernel/arch/tdx/index.js';
import type { VmFile } from '../src/kernel/kvm/vm.js';
import { buildTd, DEV_TREE, errnoOf, finalize, initMemRegion, type Td, UPSTREAM } from './tdx/td.js';

const PAGE = 4096;

function setAttr(host: Host, vm: number, gpa: number, size: number, priv: boolean): void {
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: gpa,
    size,
    attributes: priv ? uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
    flags: 0,
  });
}

/** A finalized TD whose page 1 was added from the source (content [1, 8, 15, 22, ...]). */
function tdWithPage1(kernel: string): Required<Td> {
  const td = buildTd(kernel);
  // The 2024 dev tree's INIT_MEM_REGION needs the mirror SPTE (pre-fault first, no gate there).
  if ((DEV_TREE as readonly string[]).includes(kernel))
    td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x1000, size: PAGE, flags: 0 });
  initMemRegion(td, 0x1000);
  finalize(td);
  return td;
}

function guestRead(td: Required<Td>, gpa: number, shared = false): number[] {
  const g = td.host.guest(td.vcpu);
  g.load([{ op: 'read', gpa, length: 4, shared }]);
  td.host.ioctl(td.vcpu, 'KVM_RUN');
  return [...g.results[0]!.data!];
}

const vmOf = (host: Host, fd: number) => (host.fds.lookup(fd) as VmFile).vm;

describe('kvm_arch_pre_set_memory_attributes(): attr_filter on a TD (mirror root)', () => {
  const kernels = [...UPSTREAM, ...DEV_TREE.slice(0, 1)];
  for (const k of kernels) {
    const note = (DEV_TREE as readonly string[]).includes(k) ? ' (dev tree: attr_filter inferred)' : '';
    it(`to private over a partly private range keeps the private page: no PAGE.REMOVE, data intact [${k}]${note}`, () => {
      const td = tdWithPage1(k);
      setAttr(td.host, td.vm, 0x2000, PAGE, false); // page 2 shared (nothing mapped there)
      setAttr(td.host, td.vm, 0x1000, 2 * PAGE, true); // [0x1000, 0x3000): page 1 already private
      const t = tdxVmOf(td.host, td.vm).td!;
      expect(t.calls.get('TDH.MEM.PAGE.REMOVE')).toBeUndefined();
      expect(t.sept.get(1)?.state).toBe('mapped');
      expect(guestRead(td, 0x1000)).toEqual([1, 8, 15, 22]);
    });
    it(`to shared zaps the private page (KVM_FILTER_PRIVATE) but keeps a shared SPTE of the range [${k}]${note}`, () => {
      const td = tdWithPage1(k);
      setAttr(td.host, td.vm, 0x2000, PAGE, false);
      td.host.memory.write(td.hva + 0x2000, [7, 7]);
      expect(guestRead(td, 0x2000, true).slice(0, 2)).toEqual([7, 7]);
      const mmu = vmOf(td.host, td.vm).mmu;
      const shared = mmu.sptes.get(2);
      expect(shared?.private).toBe(false);
      setAttr(td.host, td.vm, 0x1000, 2 * PAGE, false);
      const t = tdxVmOf(td.host, td.vm).td!;
      expect(t.calls.get('TDH.MEM.PAGE.REMOVE')).toBe(1);
      expect(t.sept.get(1)).toBeUndefined();
      expect(mmu.sptes.get(1)).toBeUndefined();
      expect(mmu.sptes.get(2)).toBe(shared);
    });
  }
  it('a SW_PROTECTED VM has one root: converting to private zaps the shared SPTE of the range [v7.0]', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 2 * PAGE, flags: 0 });
    const hva = host.mmap({ length: 2 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: 0,
      memory_size: 2 * PAGE,
      userspace_addr: hva,
      guest_memfd: gmem,
      guest_memfd_offset: 0,
    });
    setAttr(host, vm, 0, PAGE, true);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    host.guest(vcpu).load([
      { op: 'read', gpa: 0, length: 1 },
      { op: 'read', gpa: PAGE, length: 1 },
    ]);
    host.ioctl(vcpu, 'KVM_RUN');
    const mmu = vmOf(host, vm).mmu;
    expect([mmu.sptes.get(0)?.private, mmu.sptes.get(1)?.private]).toEqual([true, false]);
    setAttr(host, vm, 0, 2 * PAGE, true);
    // kvm_gfn_range_filter_to_root_types(): no mirror root, the direct root takes any filter.
    expect([mmu.sptes.get(0), mmu.sptes.get(1)]).toEqual([undefined, undefined]);
  });
});

describe('guest_memfd invalidations on a TD zap only private mappings (KVM_FILTER_PRIVATE)', () => {
  for (const k of UPSTREAM) {
    it(`kvm_gmem_error_folio: the private leaf goes, a shared SPTE of the same gfn range stays [${k}]`, () => {
      const td = tdWithPage1(k);
      setAttr(td.host, td.vm, 0x2000, PAGE, false);
      guestRead(td, 0x2000, true);
      const mmu = vmOf(td.host, td.vm).mmu;
      const shared = mmu.sptes.get(2);
      td.host.fallocate(td.gmem, uapi.FALLOC_FL_KEEP_SIZE, 0x2000, PAGE);
      expect(td.host.memoryFailure(td.gmem, 0x2000)).toBe(0);
      expect(mmu.sptes.get(2)).toBe(shared);
      expect(td.host.memoryFailure(td.gmem, 0x1000)).toBe(0);
      expect(mmu.sptes.get(1)).toBeUndefined();
      expect(tdxVmOf(td.host, td.vm).td!.calls.get('TDH.MEM.PAGE.REMOVE')).toBe(1);
    });
    it(`kvm_gmem_release: private leaves removed, the shared SPTE stays [${k}]`, () => {
      const td = tdWithPage1(k);
      setAttr(td.host, td.vm, 0x2000, PAGE, false);
      guestRead(td, 0x2000, true);
      const mmu = vmOf(td.host, td.vm).mmu;
      const shared = mmu.sptes.get(2);
      td.host.close(td.gmem);
      expect(mmu.sptes.get(1)).toBeUndefined();
      expect(mmu.sptes.get(2)).toBe(shared);
      expect(tdxVmOf(td.host, td.vm).td!.calls.get('TDH.MEM.PAGE.REMOVE')).toBe(1);
    });
  }
});

/** SW_PROTECTED VM: one 4-page guest_memfd slot at GPA, private; a vCPU. */
function swProtected(kernel: string) {
  const GPA = 1 << 30;
  const host = createHost({ kernel });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags: 0 });
  const hva = host.mmap({ length: 4 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 1,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: GPA,
    memory_size: 4 * PAGE,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  setAttr(host, vm, GPA, 4 * PAGE, true);
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  return { host, vm, gmem, vcpu, GPA };
}

describe('KVM_PRE_FAULT_MEMORY of an already-mapped gfn takes the full fault path', () => {
  for (const p of allProfiles().filter((q) => q.mmu.preFault && q.vmTypes.swProtected)) {
    const errno = p.mmu.preFaultEagain ? 'EAGAIN' : 'EINTR';
    for (const priv of [false, true]) {
      it(`a memslot deletion in flight: ${errno} even though the gfn is mapped (${priv ? 'private' : 'shared'}) [${p.name}]`, () => {
        const e = swProtected(p.name);
        if (!priv) setAttr(e.host, e.vm, e.GPA, PAGE, false);
        const range = { gpa: e.GPA, size: PAGE, flags: 0 };
        expect(e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', range)).toBe(0);
        const mmu = vmOf(e.host, e.vm).mmu;
        expect(mmu.sptes.get(e.GPA / PAGE)?.private).toBe(priv);
        e.host.raceMemslotUpdate(e.vm, 1);
        const again = { gpa: e.GPA, size: PAGE, flags: 0 };
        // 6.18+ kvm_mmu_faultin_pfn(): KVM_MEMSLOT_INVALID on a prefetch -> -EAGAIN (3ccbf6f47098);
        // before, RET_PF_RETRY forever against synchronize_srcu(), until a signal: -EINTR.
        expect(errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', again))).toBe(errno);
        expect(again).toEqual({ gpa: e.GPA, size: PAGE, flags: 0 });
      });
    }
  }
});

describe('KVM_PRE_FAULT_MEMORY fills kvm_run on a memory-fault exit (no prefetch exemption)', () => {
  // kvm_handle_noslot_fault(): a private fault with no memslot -> kvm_mmu_prepare_memory_fault_exit()
  // -> kvm_prepare_memory_fault_exit(), which writes vcpu->run whatever the fault's origin.
  for (const p of allProfiles().filter((q) => q.mmu.preFault && q.vmTypes.swProtected)) {
    it(`progress then a private gfn with no memslot: 0, range advanced, the exit in kvm_run [${p.name}]`, () => {
      const e = swProtected(p.name);
      setAttr(e.host, e.vm, e.GPA + 4 * PAGE, PAGE, true); // private, beyond the slot
      const range = { gpa: e.GPA + 3 * PAGE, size: 2 * PAGE, flags: 0 };
      expect(e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', range)).toBe(0);
      expect(range).toEqual({ gpa: e.GPA + 4 * PAGE, size: PAGE, flags: 0 });
      const run = e.host.kvmRun(e.vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
      expect(run.memory_fault).toEqual({
        flags: BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE),
        gpa: BigInt(e.GPA + 4 * PAGE),
        size: 4096n,
      });
    });
    it(`no progress: EFAULT, the range untouched, the exit in kvm_run [${p.name}]`, () => {
      const e = swProtected(p.name);
      setAttr(e.host, e.vm, e.GPA + 4 * PAGE, PAGE, true);
      const range = { gpa: e.GPA + 4 * PAGE, size: PAGE, flags: 0 };
      expect(errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('EFAULT');
      expect(range).toEqual({ gpa: e.GPA + 4 * PAGE, size: PAGE, flags: 0 });
      expect(e.host.kvmRun(e.vcpu).exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
      expect(e.host.kvmRun(e.vcpu).memory_fault?.gpa).toBe(BigInt(e.GPA + 4 * PAGE));
    });
    it(`a shared gfn with no memslot is ENOENT (RET_PF_EMULATE): kvm_run untouched [${p.name}]`, () => {
      const e = swProtected(p.name);
      const range = { gpa: e.GPA + 4 * PAGE, size: PAGE, flags: 0 };
      expect(errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('ENOENT');
      expect(e.host.kvmRun(e.vcpu).exit_reason).toBe(0);
      expect(e.host.kvmRun(e.vcpu).memory_fault).toBeUndefined();
    });
  }
});

describe('kvm_arch_vcpu_pre_fault_memory(): kvm_mmu_reload() before the TDP check', () => {
  for (const p of allProfiles().filter((q) => q.mmu.preFault)) {
    it(`shadow paging, no memslot yet: ENOSPC (no MMU page budget), then EOPNOTSUPP once a slot exists [${p.name}]`, () => {
      const host = createHost({ kernel: p.name, tdp: false });
      const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      const range = { gpa: 0, size: PAGE, flags: 0 };
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('ENOSPC');
      const hva = host.mmap({ length: PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: PAGE,
        userspace_addr: hva,
      });
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('EOPNOTSUPP');
    });
    it(`TDP, no memslot: the root needs no budget, ENOENT [${p.name}]`, () => {
      const host = createHost({ kernel: p.name });
      const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
      expect(errnoOf(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0, size: PAGE, flags: 0 }))).toBe(
        'ENOENT',
      );
    });
  }
});

describe('kvm_arch_flush_shadow_memslot(): kvm_mmu_zap_all_fast() or the slot alone (KVM_X86_QUIRK_SLOT_ZAP_ALL)', () => {
  /** Two 4-page anonymous slots of `type` (slot 0 at gfn 0, slot 1 at gfn 16), both read by the guest. */
  function twoSlots(kernel: string, type: number) {
    const host = createHost({ kernel });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', type);
    const hva = host.mmap({ length: 8 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    const region = (slot: number, gfn: number, size: number, at: number) =>
      host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
        slot,
        flags: 0,
        guest_phys_addr: gfn * PAGE,
        memory_size: size,
        userspace_addr: at,
      });
    region(0, 0, 4 * PAGE, hva);
    region(1, 16, 4 * PAGE, hva + 4 * PAGE);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    host
      .guest(vcpu)
      .load([{ op: 'read', gpa: 0, length: 1 }, { op: 'read', gpa: 16 * PAGE, length: 1 }, { op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    const mmu = vmOf(host, vm).mmu;
    expect(mmu.sptes.get(0)).toBeDefined();
    expect(mmu.sptes.get(16)).toBeDefined();
    return { host, vm, mmu, region, hva };
  }
  // v6.8 .. v6.11: the fast zap for every VM. 6.12+ (aa8d1f48d353): only a default VM, with the
  // quirk on (its default); other types lose the deleted slot's range alone.
  const zapAll: Record<string, boolean> = { 'v6.8': true, 'v6.11': true, 'v6.16': false, 'v7.0': false };
  for (const [k, all] of Object.entries(zapAll)) {
    it(`DEFAULT VM: deleting slot 0 drops slot 1's SPTE too [${k}]`, () => {
      const e = twoSlots(k, uapi.KVM_X86_DEFAULT_VM);
      e.region(0, 0, 0, e.hva);
      expect(e.mmu.sptes.get(0)).toBeUndefined();
      expect(e.mmu.sptes.get(16)).toBeUndefined();
    });
    it(`SW_PROTECTED VM: slot 1's SPTE ${all ? 'goes too (fast zap)' : 'stays (the slot alone)'} [${k}]`, () => {
      const e = twoSlots(k, uapi.KVM_X86_SW_PROTECTED_VM);
      e.region(0, 0, 0, e.hva);
      expect(e.mmu.sptes.get(0)).toBeUndefined();
      expect(e.mmu.sptes.get(16) === undefined).toBe(all);
    });
    it(`DEFAULT VM: deleting an SMM slot (address space 1) zaps address space 0 as well [${k}]`, () => {
      const e = twoSlots(k, uapi.KVM_X86_DEFAULT_VM);
      e.region((1 << 16) | 2, 64, PAGE, e.hva);
      expect(e.mmu.sptes.get(16)).toBeDefined();
      e.region((1 << 16) | 2, 64, 0, e.hva);
      expect(e.mmu.sptes.get(0)).toBeUndefined();
      expect(e.mmu.sptes.get(16)).toBeUndefined();
    });
  }
});

describe('kvm_arch_vcpu_pre_fault_memory(): kvm_is_gfn_alias() (8046d29dde17, 6.16-rc2)', () => {
  // Generated for the profiles with the check (TDX ones: only a TD has direct bits).
  for (const p of allProfiles().filter((q) => q.mmu.preFaultRejectsAlias && q.vmTypes.tdx)) {
    it(`a GPA with the shared bit -> EINVAL, the range untouched [${p.name}]`, () => {
      const td = tdWithPage1(p.name);
      const range = { gpa: (1n << 47n) | 0x3000n, size: 2n * 4096n, flags: 0 };
      expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('EINVAL');
      expect(range).toEqual({ gpa: (1n << 47n) | 0x3000n, size: 2n * 4096n, flags: 0 });
      // The same page without the bit is fine (AUG, PENDING).
      expect(td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x3000, size: PAGE, flags: 0 })).toBe(0);
    });
    it(`before finalization the pre_fault_allowed check comes first: EOPNOTSUPP [${p.name}]`, () => {
      const td = buildTd(p.name);
      const range = { gpa: (1n << 47n) | 0x3000n, size: 4096n, flags: 0 };
      expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', range))).toBe('EOPNOTSUPP');
    });
  }
});

describe('x86 kvm_arch_vcpu_ioctl(): an ioctl it does not know is -EINVAL', () => {
  for (const k of ['v6.8', 'v6.11', 'v7.0']) {
    it(`a VM ioctl on a vCPU fd (KVM_CREATE_GUEST_MEMFD) -> EINVAL [${k}]`, () => {
      const e = swProtected(k);
      expect(errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags: 0 }))).toBe(
        'EINVAL',
      );
    });
  }
  it('v6.8: KVM_PRE_FAULT_MEMORY does not exist -> EINVAL (not ENOTTY)', () => {
    const e = swProtected('v6.8');
    expect(
      errnoOf(() => e.host.ioctl(e.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: e.GPA, size: PAGE, flags: 0 })),
    ).toBe('EINVAL');
  });
});

describe('kvm_gmem_release(): closing the guest_memfd with the slot still bound', () => {
  for (const k of ['v6.8', 'v6.11', 'v7.0']) {
    it(`the mapping is zapped; the next private read is EFAULT with KVM_EXIT_MEMORY_FAULT [${k}]`, () => {
      const e = swProtected(k);
      e.host.guest(e.vcpu).load([{ op: 'write', gpa: e.GPA + PAGE, data: [0x5a] }]);
      e.host.ioctl(e.vcpu, 'KVM_RUN');
      const mmu = vmOf(e.host, e.vm).mmu;
      expect(mmu.sptes.get(e.GPA / PAGE + 1)?.private).toBe(true);
      expect(e.host.close(e.gmem)).toBe(0);
      expect(mmu.sptes.get(e.GPA / PAGE + 1)).toBeUndefined();
      e.host.guest(e.vcpu).load([{ op: 'read', gpa: e.GPA + PAGE, length: 1 }]);
      let err: unknown;
      try {
        e.host.ioctl(e.vcpu, 'KVM_RUN');
      } catch (x) {
        err = x;
      }
      expect(err).toBeInstanceOf(SyscallError);
      expect((err as SyscallError).code).toBe('EFAULT');
      const run = e.host.kvmRun(e.vcpu);
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
      expect(run.memory_fault).toEqual({
        flags: BigInt(uapi.KVM_MEMORY_EXIT_FLAG_PRIVATE),
        gpa: BigInt(e.GPA + PAGE),
        size: 4096n,
      });
    });
  }
});
