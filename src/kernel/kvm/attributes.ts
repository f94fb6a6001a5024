/**
 * KVM_SET_MEMORY_ATTRIBUTES: the VM-wide gfn -> attributes map. Mirrors virt/kvm/kvm_main.c
 * kvm_vm_ioctl_set_mem_attributes() and kvm_vm_set_mem_attributes(), x86 pre-set hook
 * kvm_arch_pre_set_memory_attributes() (zap the range: both kinds, or 6.14+ only the old kind). v6.8 .. v7.0.
 * The map needs no memslot and survives memslot deletion.
 *
 * Not modelled: kvm_vm_set_mem_attributes() first reserves an xarray entry per page
 * (xa_reserve), so a huge range (2^63 bytes, say) ends in -ENOMEM or the OOM killer in the kernel;
 * the model stores extents and succeeds at any size.
 *
 * Compact state: an attribute extent stores one number, `seq * 2 + private` (a "word"). PRIVATE is
 * the only attribute any modelled kernel supports (kvm_supported_mem_attributes() returns
 * KVM_MEMORY_ATTRIBUTE_PRIVATE or 0, and the ioctl rejects every other bit), so one bit holds the
 * attributes; and every extent is written at the same kernel site (KVM_SET_MEMORY_ATTRIBUTES >
 * kvm_vm_set_mem_attributes > xa_store), so the syscall's seq is all the provenance it needs:
 * MemAttrSites rebuilds the record on demand. A word is never 0 (seq >= 1): shared extents are
 * kept too, their provenance explains later mismatches.
 */
import { KVM_MEMORY_ATTRIBUTE_PRIVATE } from '../../uapi/kvm.js';
import { kerr } from '../errors.js';
import type { Provenance, Site } from '../provenance.js';
import { addOverflows, copyFromUser, pageAligned, pageAlignedNum, u64 } from '../uaccess.js';
import type { Vm } from './vm.js';

/** The value an attribute extent stores: seq * 2 + (PRIVATE set ? 1 : 0). */
export type MemAttrWord = number;

export function attrWord(seq: number, attributes: number): MemAttrWord {
  return seq * 2 + (attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE ? 1 : 0);
}

/** Is the gfn of this extent private? (No extent: never set, shared.) */
export function wordIsPrivate(w: MemAttrWord | undefined): boolean {
  return w !== undefined && w % 2 === 1;
}

/** kvm_get_memory_attributes() of an extent's word. */
export function wordAttributes(w: MemAttrWord | undefined): number {
  return wordIsPrivate(w) ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

/** The syscall that wrote the extent. */
export function wordSeq(w: MemAttrWord): number {
  return Math.floor(w / 2);
}

/**
 * Where attribute words were written. Every KVM_SET_MEMORY_ATTRIBUTES reaches the same site, so
 * one Site serves all words; a write from any other kernel path (none today) is remembered by seq.
 */
export class MemAttrSites {
  private main: Site | undefined;
  private others: Map<number, Site> | undefined;

  note(seq: number, site: Site): void {
    if (this.main === undefined) this.main = site;
    else if (site !== this.main) {
      this.others ??= new Map();
      this.others.set(seq, site);
    }
  }

  /** The provenance of the extent holding `w`. */
  provenance(w: MemAttrWord): Provenance {
    const seq = wordSeq(w);
    const site = this.others?.get(seq) ?? this.main;
    // A word exists only after note(); a missing site would be a model defect.
    if (site === undefined) return { seq, call: 'KVM_SET_MEMORY_ATTRIBUTES', path: '(unknown)' };
    return site.at(seq);
  }
}

/** kvm_supported_mem_attributes(): PRIVATE iff the VM has private memory (or no VM: /dev/kvm). */
export function supportedMemAttributes(vm: Vm | undefined): number {
  return !vm || vm.arch.hasPrivateMem ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
}

/**
 * A field's value that is absent or a plain non-negative safe integer: its value; anything else: -1.
 * Takes the value, not the name: a load with a constant name at the call site stays a named load.
 */
function plainField(v: unknown): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : -1;
}

/** KVM_SET_MEMORY_ATTRIBUTES: kvm_vm_ioctl_set_mem_attributes(), checks in its order. */
export function setMemoryAttributes(vm: Vm, arg: unknown): number {
  const s = copyFromUser(arg, 'kvm_memory_attributes');
  // Fast path, the common case (VMMs pass plain numbers): the same checks, in the same order, in
  // exact Number arithmetic. It applies only when every field is a safe integer and address + size
  // is too, so no u64 truncation or wrap can occur; anything else takes the u64 path below.
  const a = plainField(s.address);
  const z = plainField(s.size);
  const at = plainField(s.attributes);
  const f = plainField(s.flags);
  if (a >= 0 && z >= 0 && at >= 0 && f >= 0 && a + z <= Number.MAX_SAFE_INTEGER) {
    if (f !== 0) throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: flags must be 0');
    // attributes & ~supported: supported is PRIVATE or 0, so only 0 and supported itself pass.
    const supported = supportedMemAttributes(vm);
    if (at !== 0 && at !== supported)
      throw kerr('EINVAL', `kvm_vm_ioctl_set_mem_attributes: attributes 0x${at.toString(16)} not supported`);
    if (z === 0) throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: size 0 or range wraps');
    if (!pageAlignedNum(a) || !pageAlignedNum(z))
      throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: unaligned');
    return kvmVmSetMemAttributes(vm, a / 4096, (a + z) / 4096, at);
  }
  const address = u64(s, 'address');
  const size = u64(s, 'size');
  const attributes = u64(s, 'attributes');
  const flags = u64(s, 'flags');
  if (flags !== 0n) throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: flags must be 0');
  if (attributes & ~BigInt(supportedMemAttributes(vm))) {
    throw kerr(
      'EINVAL',
      `kvm_vm_ioctl_set_mem_attributes: attributes 0x${attributes.toString(16)} not supported`,
    );
  }
  if (size === 0n || addOverflows(address, size))
    throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: size 0 or range wraps');
  if (!pageAligned(address) || !pageAligned(size))
    throw kerr('EINVAL', 'kvm_vm_ioctl_set_mem_attributes: unaligned');
  return kvmVmSetMemAttributes(
    vm,
    Number(address >> 12n),
    Number((address + size) >> 12n),
    Number(attributes),
  );
}

/** kvm_vm_set_mem_attributes(): the validated gfn range [start, end) gets `attrs`. */
function kvmVmSetMemAttributes(vm: Vm, start: number, end: number, attrs: number): number {
  const t = vm.host.tracer;
  t.enter('kvm_vm_set_mem_attributes');
  try {
    // Nothing to do (and nothing zapped) if the whole range already has these attributes.
    if (vm.attributesAre(start, end, attrs)) return 0;
    // x86 kvm_arch_pre_set_memory_attributes(): "Unmap the old attribute page". With attr_filter
    // (6.14+, TDX MMU prep) only the kind being left is zapped: KVM_FILTER_SHARED when the range
    // becomes private, KVM_FILTER_PRIVATE otherwise, so on a TD a page of the range that is already
    // private keeps its S-EPT leaf. Before, both kinds (only TDX can tell them apart anyway).
    if (!vm.profile.bugs?.noZapOnAttributeChange) {
      const filter = !vm.profile.mmu.gfnRangeFilter
        ? 'all'
        : attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE
          ? 'shared'
          : 'private';
      vm.mmu.zapGfnRange(start, end, filter, 'kvm_arch_pre_set_memory_attributes');
    }
    vm.attrSites.note(t.seq, t.site('xa_store'));
    vm.setAttributes(start, end, attrWord(t.seq, attrs));
    const c = vm.lastConversion;
    if (!c.answered && start <= c.gfn && end >= c.gfn + c.npages && c.private === (attrs !== 0))
      c.answered = true;
    vm.host.invariants.touchGfns(vm, start, end);
    return 0;
  } finally {
    t.leave();
  }
}
