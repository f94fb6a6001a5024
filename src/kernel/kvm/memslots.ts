/**
 * Memslots: KVM_SET_USER_MEMORY_REGION(2). Mirrors virt/kvm/kvm_main.c
 * (kvm_vm_ioctl_set_memory_region, __kvm_set_memory_region, check_memory_region_flags) and the x86
 * kvm_arch_prepare_memory_region(). Versions: v6.8 .. v7.0. Address space 0 and 1 (SMM) as x86 has.
 */
import { ExtentMap } from '../../ranges/extent-map.js';
import {
  KVM_ADDRESS_SPACE_NUM,
  KVM_MEM_GUEST_MEMFD,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_USER_MEM_SLOTS,
} from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import { describeProvenance, type Provenance } from '../provenance.js';
import { addOverflows, copyFromUser, pageAligned, u32, u64 } from '../uaccess.js';
import type { GmemFile } from './guest-memfd.js';
import { kvmGmemBind, kvmGmemUnbind } from './guest-memfd.js';
import type { Vm } from './vm.js';

/** x86-64 TASK_SIZE_MAX for access_ok() (4-level paging). */
const TASK_SIZE_MAX = 0x7fff_ffff_f000n;
/** kvm_mmu_max_gfn() for a host with MAXPHYADDR 52. */
const MMU_MAX_GFN = (1n << 40n) - 1n;
/** KVM_MEM_MAX_NR_PAGES (include/linux/kvm_host.h): dirty bitmaps are indexed by an unsigned int. */
const KVM_MEM_MAX_NR_PAGES = (1n << 31n) - 1n;

export interface MemslotGmem {
  /** slot->gmem.file: NULL once the guest_memfd is closed (kvm_gmem_release). */
  file: GmemFile | null;
  /** slot->gmem.pgoff. */
  readonly pgoff: number;
}

export interface Memslot {
  readonly asId: number;
  readonly id: number;
  readonly baseGfn: number;
  readonly npages: number;
  readonly flags: number;
  readonly userspaceAddr: number;
  readonly gmem?: MemslotGmem;
  /** 6.18+: KVM_MEMSLOT_GMEM_ONLY, set when the bound guest_memfd supports mmap. */
  readonly gmemOnly: boolean;
  readonly since: Provenance;
}

export const V1_FLAGS = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;

/** __gfn_to_hva_memslot(): the userspace address of gfn's page in `slot`. */
export function gfnToHvaMemslot(slot: Memslot, gfn: number): number {
  return slot.userspaceAddr + (gfn - slot.baseGfn) * 4096;
}

/** One address space's slots, by id and by gfn. */
class SlotSet {
  readonly byId = new Map<number, Memslot>();
  readonly byGfn = new ExtentMap<Memslot>();
  /**
   * kvm_memslots.last_used_slot: the slot a gfn lookup found last, tried first by the next one
   * (____gfn_to_memslot). Every memslot update publishes a new kvm_memslots, so it starts empty.
   */
  lastUsed: Memslot | undefined = undefined;
  /** Gfn ranges a deleted or moved slot left (for explanations): the update and the slot's id. */
  readonly leftBy = new ExtentMap<{ since: Provenance; id: number }>();

  /** byGfn[start, end) = slot (undefined: none), as one memslot update. */
  assign(start: number, end: number, slot: Memslot | undefined): void {
    this.lastUsed = undefined;
    this.byGfn.set(start, end, slot);
    if (slot !== undefined) this.leftBy.set(start, end, undefined);
  }
}

/**
 * Why gfn has no guest_memfd memslot, for explanations: no slot (and which update removed the one
 * that was there), or a slot without KVM_MEM_GUEST_MEMFD.
 */
export function gmemSlotCause(vm: Vm, gfn: number): string {
  const slot = vm.memslots.lookup(gfn);
  if (slot)
    return `memslot ${slot.id} has no KVM_MEM_GUEST_MEMFD (made by ${describeProvenance(slot.since)})`;
  const left = vm.memslots.space(0).leftBy.get(gfn);
  return left
    ? `no memslot covers gfn 0x${gfn.toString(16)}: memslot ${left.id} left it at ${describeProvenance(left.since)}`
    : `no memslot covers gfn 0x${gfn.toString(16)}`;
}

export class Memslots {
  private readonly spaces: SlotSet[] = Array.from({ length: KVM_ADDRESS_SPACE_NUM }, () => new SlotSet());
  nrMemslotPages = 0n;

  /** gfn_to_memslot() in address space 0: the last slot used, else a search (which then is). */
  lookup(gfn: number): Memslot | undefined {
    const space = this.spaces[0]!;
    const last = space.lastUsed;
    if (last !== undefined && gfn >= last.baseGfn && gfn < last.baseGfn + last.npages) return last;
    const slot = space.byGfn.get(gfn);
    if (slot !== undefined) space.lastUsed = slot;
    return slot;
  }

  all(asId = 0): IterableIterator<Memslot> {
    return this.spaces[asId]!.byId.values();
  }

  get count(): number {
    let n = 0;
    for (const s of this.spaces) n += s.byId.size;
    return n;
  }

  space(asId: number): SlotSet {
    return this.spaces[asId]!;
  }
}

/** kvm_vm_ioctl(KVM_SET_USER_MEMORY_REGION[2]). */
export function setUserMemoryRegion(vm: Vm, arg: unknown, v2: boolean): number {
  const s = copyFromUser(arg, 'kvm_userspace_memory_region');
  const mem = {
    slot: u32(s, 'slot'),
    flags: u32(s, 'flags'),
    guestPhysAddr: u64(s, 'guest_phys_addr'),
    memorySize: u64(s, 'memory_size'),
    userspaceAddr: u64(s, 'userspace_addr'),
    // Fields past the v1 struct are not read for the v1 ioctl (memset to 0).
    guestMemfdOffset: v2 ? u64(s, 'guest_memfd_offset') : 0n,
    guestMemfd: v2 ? u32(s, 'guest_memfd') : 0n,
  };
  // kvm_vm_ioctl: the v1 ioctl accepts only LOG_DIRTY_PAGES and READONLY.
  if (!v2 && mem.flags & ~BigInt(V1_FLAGS))
    throw kerr('EINVAL', 'KVM_SET_USER_MEMORY_REGION: flag not valid for v1');
  // kvm_vm_ioctl_set_memory_region
  if ((mem.slot & 0xffffn) >= BigInt(KVM_USER_MEM_SLOTS))
    throw kerr('EINVAL', 'slot id >= KVM_USER_MEM_SLOTS');
  return vm.host.tracer.within('__kvm_set_memory_region', () => setMemoryRegion(vm, mem));
}

interface MemRegion {
  slot: bigint;
  flags: bigint;
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  guestMemfdOffset: bigint;
  guestMemfd: bigint;
}

/** check_memory_region_flags(). */
function checkMemoryRegionFlags(vm: Vm, flags: bigint): void {
  let valid = BigInt(KVM_MEM_LOG_DIRTY_PAGES);
  if (vm.arch.hasPrivateMem || vm.profile.memslots.gmemOnAnyVm) valid |= BigInt(KVM_MEM_GUEST_MEMFD);
  // Dirty logging of private memory is not supported.
  if (flags & BigInt(KVM_MEM_GUEST_MEMFD)) valid &= ~BigInt(KVM_MEM_LOG_DIRTY_PAGES);
  // Read-only slots have MMIO semantics on write, which private memory cannot have (e563592224e0);
  // VMs with protected state have no read-only memory at all (kvm_arch_has_readonly_mem, 6.10+).
  if (!vm.hasProtectedState && !(flags & BigInt(KVM_MEM_GUEST_MEMFD))) valid |= BigInt(KVM_MEM_READONLY);
  if (flags & ~valid)
    throw kerr('EINVAL', `check_memory_region_flags: flags 0x${flags.toString(16)} not valid`);
}

function setMemoryRegion(vm: Vm, mem: MemRegion): number {
  checkMemoryRegionFlags(vm, mem.flags);
  const asId = Number(mem.slot >> 16n);
  const id = Number(mem.slot & 0xffffn);
  const gmemFlag = (mem.flags & BigInt(KVM_MEM_GUEST_MEMFD)) !== 0n;

  // General sanity checks, in __kvm_set_memory_region()'s order.
  if (!pageAligned(mem.memorySize)) throw kerr('EINVAL', 'memory_size not page aligned');
  if (!pageAligned(mem.guestPhysAddr)) throw kerr('EINVAL', 'guest_phys_addr not page aligned');
  // access_ok(): 6.12+ the end must not pass TASK_SIZE_MAX; before, only stay below 2^63.
  const userEnd = mem.userspaceAddr + mem.memorySize;
  const accessOk = vm.profile.memslots.accessOkTaskSizeMax ? userEnd <= TASK_SIZE_MAX : userEnd < 1n << 63n;
  if (!pageAligned(mem.userspaceAddr) || !accessOk) {
    throw kerr('EINVAL', 'userspace_addr unaligned or not access_ok');
  }
  if (
    gmemFlag &&
    (!pageAligned(mem.guestMemfdOffset) || addOverflows(mem.guestMemfdOffset, mem.memorySize))
  ) {
    throw kerr('EINVAL', 'guest_memfd_offset unaligned or offset + size overflows');
  }
  if (asId >= KVM_ADDRESS_SPACE_NUM || (asId > 0 && vm.arch.hasPrivateMem)) {
    throw kerr('EINVAL', 'address space id out of range');
  }
  if (addOverflows(mem.guestPhysAddr, mem.memorySize))
    throw kerr('EINVAL', 'guest_phys_addr + memory_size wraps');
  // __kvm_set_memory_region(): user slots are limited to KVM_MEM_MAX_NR_PAGES pages.
  if (mem.memorySize >> 12n > KVM_MEM_MAX_NR_PAGES)
    throw kerr('EINVAL', '__kvm_set_memory_region: memory_size > KVM_MEM_MAX_NR_PAGES pages');

  const space = vm.memslots.space(asId);
  const old = space.byId.get(id);

  if (mem.memorySize === 0n) {
    if (!old) throw kerr('EINVAL', 'deleting a slot that does not exist');
    deleteSlot(vm, old);
    return 0;
  }

  const baseGfn = mem.guestPhysAddr >> 12n;
  const npages = mem.memorySize >> 12n;
  let change: 'create' | 'move' | 'flags';
  if (!old) {
    change = 'create';
  } else {
    // Private memslots are immutable: they can only be deleted.
    if (gmemFlag) throw kerr('EINVAL', 'guest_memfd memslots are immutable');
    // 6.19+ (9935df5333aa): KVM_MEM_GUEST_MEMFD cannot be toggled either; before, clearing it
    // re-issued the slot without its guest_memfd.
    const fixed = KVM_MEM_READONLY | (vm.profile.memslots.rejectGmemFlagToggle ? KVM_MEM_GUEST_MEMFD : 0);
    if (
      mem.userspaceAddr !== BigInt(old.userspaceAddr) ||
      npages !== BigInt(old.npages) ||
      (Number(mem.flags) ^ old.flags) & fixed
    ) {
      throw kerr('EINVAL', 'modifying a slot: userspace_addr, size, READONLY or GUEST_MEMFD changed');
    }
    if (baseGfn !== BigInt(old.baseGfn)) change = 'move';
    else if (Number(mem.flags) !== old.flags) change = 'flags';
    else return 0;
  }

  // kvm_check_memslot_overlap() for CREATE and MOVE: -EEXIST.
  if (change !== 'flags') {
    for (const e of space.byGfn.entries(Number(baseGfn), Number(baseGfn + npages))) {
      if (e.value.id !== id) throw kerr('EEXIST', `GPA range overlaps memslot ${e.value.id}`);
    }
  }

  // kvm_gmem_bind() runs on the new slot before kvm_set_memslot() (and so before the arch check).
  let gmem: MemslotGmem | undefined;
  let gmemOnly = false;
  if (gmemFlag) {
    const bound = vm.host.tracer.within('kvm_gmem_bind', () =>
      kvmGmemBind(vm, Number(mem.guestMemfd), mem.guestMemfdOffset, Number(npages)),
    );
    gmem = { file: bound.file, pgoff: bound.pgoff };
    gmemOnly = bound.gmemOnly;
  }
  // kvm_set_memslot() > kvm_arch_prepare_memory_region(): for CREATE and MOVE the last gfn must be
  // addressable; a failure unbinds (nothing was bound yet here).
  if (change !== 'flags' && baseGfn + npages - 1n > MMU_MAX_GFN)
    throw kerr('EINVAL', 'kvm_arch_prepare_memory_region: gfn beyond kvm_mmu_max_gfn()');
  // ... nor carry the VM's direct bits (a TD's shared bit, set by KVM_TDX_INIT_VM).
  if (
    change !== 'flags' &&
    vm.profile.memslots.rejectGfnAlias &&
    vm.arch.decodeGpa &&
    !vm.arch.decodeGpa((baseGfn + npages - 1n) << 12n).private
  )
    throw kerr('EINVAL', 'kvm_arch_prepare_memory_region: last gfn has the shared bit (kvm_is_gfn_alias)');

  const since = vm.host.tracer.here(`kvm_set_memslot(${change})`);
  const slot: Memslot = {
    asId,
    id,
    baseGfn: Number(baseGfn),
    npages: Number(npages),
    flags: Number(mem.flags),
    userspaceAddr: Number(mem.userspaceAddr),
    // A re-issued slot is built anew (kzalloc): without GUEST_MEMFD it has no gmem, even if the old one had.
    gmem,
    gmemOnly,
    since,
  };
  if (gmem?.file) gmem.file.bindings.set(gmem.pgoff, gmem.pgoff + slot.npages, slot);
  if (old) {
    if (change === 'move') vm.mmu.zapSlot(old, 'kvm_arch_flush_shadow_memslot');
    space.assign(old.baseGfn, old.baseGfn + old.npages, undefined);
    space.leftBy.set(old.baseGfn, old.baseGfn + old.npages, { since, id });
  } else {
    vm.memslots.nrMemslotPages += npages;
  }
  space.byId.set(id, slot);
  space.assign(slot.baseGfn, slot.baseGfn + slot.npages, slot);
  if (!old) vm.mmu.memslotCreatedOrDeleted(vm.memslots.nrMemslotPages);
  vm.mmu.memslotsChanged();
  return 0;
}

/** KVM_MR_DELETE: zap, remove, kvm_gmem_unbind(). Also used when the VM is destroyed. */
export function deleteSlot(vm: Vm, slot: Memslot): void {
  const space = vm.memslots.space(slot.asId);
  if (!vm.profile.bugs?.noZapOnMemslotDelete) vm.mmu.zapSlot(slot, 'kvm_arch_flush_shadow_memslot');
  space.byId.delete(slot.id);
  space.assign(slot.baseGfn, slot.baseGfn + slot.npages, undefined);
  space.leftBy.set(slot.baseGfn, slot.baseGfn + slot.npages, {
    since: vm.host.tracer.here('kvm_set_memslot(delete)'),
    id: slot.id,
  });
  vm.memslots.nrMemslotPages -= BigInt(slot.npages);
  vm.mmu.memslotCreatedOrDeleted(vm.memslots.nrMemslotPages);
  if (slot.gmem) vm.host.tracer.within('kvm_gmem_unbind', () => kvmGmemUnbind(slot));
  vm.mmu.memslotsChanged();
}
