/**
 * The TDP MMU as guest_memfd sees it: SPTEs per gfn (none / shared / private), the page-fault path
 * and zapping. Mirrors arch/x86/kvm/mmu/mmu.c (kvm_mmu_faultin_pfn and the private/shared decision,
 * kvm_mmu_prepare_memory_fault_exit, kvm_tdp_map_page) and the zap side of tdp_mmu.c.
 * Every mapping is 4 KiB: guest_memfd folios are order 0, so private mappings never grow larger.
 */
import { ExtentMap } from '../../ranges/extent-map.js';
import {
  KVM_EXIT_MEMORY_FAULT,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_MEMORY_EXIT_FLAG_PRIVATE,
} from '../../uapi/kvm.js';
import { KernelError, kerr } from '../errors.js';
import type { Provenance } from '../provenance.js';
import { type GmemInode, kvmGmemGetPfn } from './guest-memfd.js';
import type { Memslot } from './memslots.js';
import type { Vcpu } from './vcpu.js';
import type { Vm } from './vm.js';

export interface Spte {
  readonly private: boolean;
  /** For private SPTEs: the folio mapped (inode, gen, pfn - gfn) so stale mappings can be detected. */
  readonly inode?: GmemInode;
  readonly gen?: number;
  readonly pfnDelta?: number;
  readonly since: Provenance;
}

const spteEquals = (a: Spte, b: Spte): boolean =>
  a.private === b.private &&
  a.inode === b.inode &&
  a.gen === b.gen &&
  a.pfnDelta === b.pfnDelta &&
  a.since === b.since;

/** What a fault resolved to (RET_PF_FIXED with its backing, or RET_PF_EMULATE for MMIO). */
export type FaultResult =
  | { kind: 'fixed'; private: true; inode: GmemInode; index: number; slot: Memslot }
  | { kind: 'fixed'; private: false; slot: Memslot; hva: number; gmem?: { inode: GmemInode; index: number } }
  | { kind: 'emulate' };

export type ZapFilter = 'all' | 'private' | 'shared';

export class Mmu {
  readonly sptes = new ExtentMap<Spte>(spteEquals);
  /** Bumped on every memslot change: a pre-fault that sees it move without progress returns -EAGAIN (6.18+). */
  memslotGeneration = 0;

  constructor(private readonly vm: Vm) {}

  memslotsChanged(): void {
    this.memslotGeneration++;
  }

  /** Zap SPTEs in [start, end) matching `filter` (kvm_unmap_gfn_range / kvm_tdp_mmu_unmap_gfn_range). */
  zapGfnRange(start: number, end: number, filter: ZapFilter, why: string): void {
    if (start >= end || this.sptes.size === 0) return;
    const privateRuns: Array<[number, number]> = [];
    this.sptes.update(start, end, (s, a, b) => {
      if (!s) return s;
      if (filter === 'private' && !s.private) return s;
      if (filter === 'shared' && s.private) return s;
      if (s.private) privateRuns.push([a, b]);
      return undefined;
    });
    if (privateRuns.length > 0 && this.vm.arch.removePrivateSptes) {
      const t = this.vm.host.tracer;
      for (const [a, b] of privateRuns) t.within(why, () => this.vm.arch.removePrivateSptes!(a, b - a));
    }
    this.vm.host.invariants.touchGfns(this.vm, start, end);
  }

  /** kvm_arch_flush_shadow_memslot(): a deleted or moved slot loses its mappings. */
  zapSlot(slot: Memslot, why: string): void {
    if (slot.asId !== 0) return;
    this.zapGfnRange(slot.baseGfn, slot.baseGfn + slot.npages, 'all', why);
  }

  /**
   * The TDP page fault for one gfn: kvm_mmu_faultin_pfn() then the map. `isPrivate` is the fault's
   * private bit (SW_PROTECTED: the attribute; SNP/TDX: the guest's view). On a memory-fault exit the
   * vCPU's kvm_run is filled and the errno is thrown, as KVM_RUN returns it.
   */
  fault(vcpu: Vcpu | undefined, gfn: number, isPrivate: boolean, write: boolean): FaultResult {
    const vm = this.vm;
    const t = vm.host.tracer;
    const slot = vm.memslots.lookup(gfn);
    // kvm_mmu_faultin_pfn(): the access must agree with the attribute.
    const attrPrivate =
      vm.arch.hasPrivateMem && (vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE) !== 0;
    if (isPrivate !== attrPrivate) {
      this.memoryFaultExit(vcpu, gfn, isPrivate, write);
      throw kerr(
        'EFAULT',
        'kvm_mmu_faultin_pfn: access does not match the memory attribute',
        vm.attributeCause(gfn),
      );
    }
    if (isPrivate) {
      // kvm_mmu_faultin_pfn_gmem(): the slot must have a guest_memfd.
      if (!slot?.gmem) {
        this.memoryFaultExit(vcpu, gfn, isPrivate, write);
        throw kerr(
          'EFAULT',
          slot
            ? 'kvm_mmu_faultin_pfn_gmem: memslot has no guest_memfd'
            : 'kvm_mmu_faultin_pfn_gmem: no memslot',
        );
      }
      return this.faultGmem(vcpu, slot, gfn, true, write);
    }
    if (!slot) return { kind: 'emulate' }; // kvm_handle_noslot_fault(): MMIO
    if (slot.gmemOnly) return this.faultGmem(vcpu, slot, gfn, false, write);
    const hva = slot.userspaceAddr + (gfn - slot.baseGfn) * 4096;
    // __kvm_faultin_pfn(): GUP of the shared mapping; an unmapped hva is KVM_PFN_ERR_FAULT -> -EFAULT.
    if (!vm.host.mm.find(hva)) {
      this.memoryFaultExit(vcpu, gfn, false, write);
      throw kerr('EFAULT', `__kvm_faultin_pfn: hva 0x${hva.toString(16)} is not mapped`);
    }
    const cur = this.sptes.get(gfn);
    if (!cur || cur.private)
      this.sptes.set(gfn, gfn + 1, { private: false, since: t.here('kvm_tdp_mmu_map (shared)') });
    vm.host.invariants.touchGfns(vm, gfn, gfn + 1);
    return { kind: 'fixed', private: false, slot, hva };
  }

  private faultGmem(
    vcpu: Vcpu | undefined,
    slot: Memslot,
    gfn: number,
    isPrivate: boolean,
    write: boolean,
  ): FaultResult {
    const vm = this.vm;
    const t = vm.host.tracer;
    const cur = this.sptes.get(gfn);
    let got: ReturnType<typeof kvmGmemGetPfn>;
    try {
      got = kvmGmemGetPfn(vm, slot, gfn);
    } catch (e) {
      if (e instanceof KernelError) this.memoryFaultExit(vcpu, gfn, isPrivate, write);
      throw e;
    }
    const spte: Spte = {
      private: isPrivate,
      inode: got.inode,
      gen: got.folio.gen,
      pfnDelta: got.pfn - gfn,
      since: t.here(isPrivate ? 'kvm_tdp_mmu_map (private)' : 'kvm_tdp_mmu_map (gmem shared)'),
    };
    if (!cur || cur.private !== isPrivate || cur.gen !== spte.gen || cur.inode !== spte.inode) {
      if (isPrivate && vm.arch.setPrivateSpte) {
        t.within('kvm_tdp_mmu_map > set_external_spte', () => vm.arch.setPrivateSpte!(gfn, got.pfn, slot));
      }
      this.sptes.set(gfn, gfn + 1, spte);
    }
    vm.host.invariants.touchGfns(vm, gfn, gfn + 1);
    return isPrivate
      ? { kind: 'fixed', private: true, inode: got.inode, index: got.index, slot }
      : {
          kind: 'fixed',
          private: false,
          slot,
          hva: slot.userspaceAddr + (gfn - slot.baseGfn) * 4096,
          gmem: { inode: got.inode, index: got.index },
        };
  }

  /** kvm_mmu_prepare_memory_fault_exit(). */
  memoryFaultExit(vcpu: Vcpu | undefined, gfn: number, isPrivate: boolean, _write: boolean): void {
    if (!vcpu) return;
    vcpu.run.exit_reason = KVM_EXIT_MEMORY_FAULT;
    vcpu.run.memory_fault = {
      flags: isPrivate ? BigInt(KVM_MEMORY_EXIT_FLAG_PRIVATE) : 0n,
      gpa: BigInt(gfn) << 12n,
      size: 4096n,
    };
  }
}
