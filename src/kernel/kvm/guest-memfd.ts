/**
 * guest_memfd: the file, its page cache and its bindings.
 * Mirrors virt/kvm/guest_memfd.c. Versions: v6.8 .. v7.0 (switches in profile.gmem).
 * Parity: create, bind/unbind, fallocate (allocate, punch hole), mmap and the user fault handler
 * (6.18+), release, get_pfn with each version's preparation, populate, memory failure.
 * Not modelled: NUMA mempolicy, large folios (every folio is order 0, as KVM allocates them).
 */
import { ExtentMap } from '../../ranges/extent-map.js';
import { PointExtentMap } from '../../ranges/point-extent-map.js';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED,
  GUEST_MEMFD_FLAG_MMAP,
  GUEST_MEMFD_FLAG_NO_DIRECT_MAP,
  KVM_MEMORY_ATTRIBUTE_PRIVATE,
  KVM_X86_SNP_VM,
  KVM_X86_TDX_VM,
} from '../../uapi/kvm.js';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  PAGE_SIZE,
} from '../../uapi/mman.js';
import { HostFault, KernelError, kerr } from '../errors.js';
import { KFile, type Loff, type MmapBacking, type MmapRequest, type Stat } from '../file.js';
import type { Host } from '../host.js';
import { PageBytes, pageWith } from '../page-bytes.js';
import type { GmemPreparation, KernelProfile } from '../profiles/types.js';
import { describeProvenance, type Provenance, type Site, type Tracer } from '../provenance.js';
import { copyFromUser, pageAligned, pageAlignedNum, s64, u64 } from '../uaccess.js';
import { wordAttributes } from './attributes.js';
import { gmemSlotCause, type Memslot } from './memslots.js';
import type { ZapFilter } from './mmu.js';
import type { Vm } from './vm.js';

/** What a page-cache folio holds. 'garbage' is whatever the host left in the page: never clear. */
export type FolioContent = 'garbage' | 'zero' | 'data';

/**
 * A page-cache folio of guest_memfd. The changes that made it are kept as (seq, site), not as
 * record objects: a million-page trace keeps a folio per page, and its record was one more object
 * per page for the garbage collector to copy and promote. `since` and `uptodateSince` build the
 * records when an explanation asks.
 */
export class Folio {
  // Declared, not defined: ES2022 class fields would store each field twice per folio.
  /** Allocation serial: a page freed and allocated again is a different folio. */
  declare readonly gen: number;
  declare readonly content: FolioContent;
  /** PG_uptodate; what it means depends on profile.gmem.preparation. */
  declare readonly uptodate: boolean;
  declare readonly hwpoison: boolean;
  /** The change that made this state. */
  declare readonly seq: number;
  declare readonly site: Site;
  /** The change that set PG_uptodate (no site: none kept). */
  declare readonly uptodateSeq: number;
  declare readonly uptodateSite: Site | undefined;

  constructor(
    gen: number,
    content: FolioContent,
    uptodate: boolean,
    hwpoison: boolean,
    seq: number,
    site: Site,
    uptodateSeq: number,
    uptodateSite: Site | undefined,
  ) {
    this.gen = gen;
    this.content = content;
    this.uptodate = uptodate;
    this.hwpoison = hwpoison;
    this.seq = seq;
    this.site = site;
    this.uptodateSeq = uptodateSeq;
    this.uptodateSite = uptodateSite;
  }

  /** The change that made this state. */
  get since(): Provenance {
    return this.site.at(this.seq);
  }

  /** The change that set PG_uptodate, kept for explanations. */
  get uptodateSince(): Provenance | undefined {
    return this.uptodateSite?.at(this.uptodateSeq);
  }
}

const folioEquals = (a: Folio, b: Folio): boolean =>
  a.gen === b.gen &&
  a.content === b.content &&
  a.uptodate === b.uptodate &&
  a.hwpoison === b.hwpoison &&
  a.seq === b.seq &&
  a.site === b.site &&
  a.uptodateSeq === b.uptodateSeq &&
  a.uptodateSite === b.uptodateSite;

/**
 * A folio of allocation `gen`, not poisoned, made by syscall `seq` at `site`, which also set
 * PG_uptodate if `uptodate`. (The folio helpers take a change as (seq, site): the hot paths make
 * no record object.)
 */
function folioOf(gen: number, content: FolioContent, uptodate: boolean, seq: number, site: Site): Folio {
  return uptodate
    ? new Folio(gen, content, true, false, seq, site, seq, site)
    : new Folio(gen, content, false, false, seq, site, 0, undefined);
}

/** Folio `f` holding `content`, marked up to date (folio_mark_uptodate) by the change (seq, site), which made this state. */
function folioUptodate(f: Folio, content: FolioContent, seq: number, site: Site): Folio {
  return new Folio(f.gen, content, true, f.hwpoison, seq, site, seq, site);
}

/**
 * Folio `f` changed by the change (seq, site) to hold `content` (and be poisoned, with `hwpoison`):
 * its PG_uptodate and the change that set it stay as they were.
 */
export function folioChanged(
  f: Folio,
  content: FolioContent,
  seq: number,
  site: Site,
  hwpoison = f.hwpoison,
): Folio {
  return new Folio(f.gen, content, f.uptodate, hwpoison, seq, site, f.uptodateSeq, f.uptodateSite);
}

/** The bytes a never-cleared page shows: recognisably not zero, so a leak is visible in tests. */
export const HOST_GARBAGE_BYTE = 0xcc;

/** The guest_memfd inode: the memory. Its lifetime is the inode's, not a file's or a VM's. */
export class GmemInode {
  readonly folios = new PointExtentMap<Folio>(folioEquals);
  /**
   * Bytes of pages whose content is 'data'. An entry shorter than PAGE_SIZE holds the page's first
   * bytes and the rest of the page is zero: a small guest store into a fresh folio allocates a few
   * bytes, not 4 KiB. folioBytes() widens such an entry to a full page when the page is read.
   */
  readonly data = new PageBytes();
  readonly files = new Set<GmemFile>();
  readonly npages: number;

  constructor(
    /** The host the memory belongs to (its platform is told when folios are freed). */
    readonly host: Host,
    readonly ino: number,
    readonly size: bigint,
    readonly flags: bigint,
    /** Host pfn of page index 0: deterministic, each inode gets its own window. */
    readonly pfnBase: number,
    /** The VM that created it (kvm_gmem_create): the only one whose SPTEs can map its folios. */
    readonly owner: Vm,
  ) {
    this.npages = Number(size >> 12n);
  }

  get initShared(): boolean {
    return (this.flags & BigInt(GUEST_MEMFD_FLAG_INIT_SHARED)) !== 0n;
  }

  get supportsMmap(): boolean {
    return (this.flags & BigInt(GUEST_MEMFD_FLAG_MMAP)) !== 0n;
  }

  /** AS_NO_DIRECT_MAP (out of tree): folios leave the kernel's direct map; GUP refuses the mappings. */
  get noDirectMap(): boolean {
    return (this.flags & BigInt(GUEST_MEMFD_FLAG_NO_DIRECT_MAP)) !== 0n;
  }

  pfn(index: number): number {
    return this.pfnBase + index;
  }

  /** The bytes of page `index` (null = zeroes); a 'garbage' page reads as HOST_GARBAGE_BYTE. */
  readPage(index: number): Uint8Array | null {
    return this.folioBytes(index, this.folios.get(index));
  }

  /** readPage() when the caller already holds page `index`'s folio. */
  folioBytes(index: number, f: Folio | undefined): Uint8Array | null {
    if (!f || f.content === 'zero') return null;
    if (f.content === 'garbage') return new Uint8Array(PAGE_SIZE).fill(HOST_GARBAGE_BYTE);
    const d = this.data.get(index);
    if (d === undefined) return null;
    return d.length === PAGE_SIZE ? d : this.widen(index, d);
  }

  /** Replace a short data entry (see `data`) by the full page it stands for. */
  widen(index: number, short: Uint8Array): Uint8Array {
    const page = new Uint8Array(PAGE_SIZE);
    page.set(short);
    this.data.set(index, page);
    return page;
  }
}

/** A guest_memfd file: one VM's handle on the inode, with the memslots bound to it. */
export class GmemFile extends KFile {
  /** An anonymous-inode pseudo file: no FMODE_PREAD/FMODE_PWRITE. */
  override get positional(): boolean {
    return false;
  }

  override get regular(): boolean {
    return true;
  }

  /**
   * 6.15+: anon_inodefs raises SB_I_NOEXEC, and 7.0's own guest_memfd fs sets SB_I_NOEXEC and
   * MNT_NOEXEC (profile vfs.anonInodeNoexec; seen on a 6.18 host: PROT_EXEC is -EPERM with or
   * without GUEST_MEMFD_FLAG_MMAP, and on 6.15 .. 6.17 it comes before the missing ->mmap).
   */
  override get noexec(): boolean {
    return this.vm.profile.vfs.anonInodeNoexec;
  }

  readonly kind = 'guest_memfd';
  /** Page index -> the memslot bound there (gmem->bindings). */
  readonly bindings = new ExtentMap<Memslot>();

  constructor(
    readonly vm: Vm,
    readonly inode: GmemInode,
  ) {
    super(vm.host);
  }

  stat(): Stat {
    return {
      st_ino: this.inode.ino,
      st_size: Number(this.inode.size),
      st_blksize: PAGE_SIZE,
      st_mode: 0o100600,
    };
  }

  /** kvm_gmem_fallocate(); vfs_fallocate()'s generic checks ran before. */
  override fallocate(mode: number, offset: Loff, len: Loff): void {
    const t = this.host.tracer;
    t.enter('kvm_gmem_fallocate');
    try {
      if (!(mode & FALLOC_FL_KEEP_SIZE)) throw kerr('EOPNOTSUPP', 'kvm_gmem_fallocate: KEEP_SIZE required');
      if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
        throw kerr('EOPNOTSUPP', 'kvm_gmem_fallocate: only KEEP_SIZE and PUNCH_HOLE');
      }
      // Aligned, and vfs_fallocate() checked offset >= 0, len > 0, offset + len <= s_maxbytes.
      // Number offsets (the common case) need no BigInt: two page multiples below 2^53 add up exactly.
      let start: number;
      let end: number;
      if (typeof offset === 'number' && typeof len === 'number') {
        if (!pageAlignedNum(offset) || !pageAlignedNum(len))
          throw kerr('EINVAL', 'kvm_gmem_fallocate: offset or len unaligned');
        start = offset / PAGE_SIZE;
        end = (offset + len) / PAGE_SIZE;
      } else {
        const o = BigInt(offset);
        const l = BigInt(len);
        if (!pageAligned(o) || !pageAligned(l))
          throw kerr('EINVAL', 'kvm_gmem_fallocate: offset or len unaligned');
        start = Number(o >> 12n);
        end = Number((o + l) >> 12n);
      }
      const punch = (mode & FALLOC_FL_PUNCH_HOLE) !== 0;
      t.enter(punch ? 'kvm_gmem_punch_hole' : 'kvm_gmem_allocate');
      try {
        // No unmap_mapping_range() here: truncate_inode_pages_range() unmaps only folios that host
        // page tables map, which the model does not track for guest_memfd mappings (6.18+); KVM's
        // own invalidation (kvm_gmem_invalidate_begin) is what zaps the guest's SPTEs.
        if (punch) punchHole(this.inode, start, end);
        else allocate(this, BigInt(offset) + BigInt(len), start, end);
      } finally {
        t.leave();
      }
    } finally {
      t.leave();
    }
  }

  /** kvm_gmem_fops.mmap exists from 6.18 (kvm_gmem_mmap; it refuses a file without MMAP itself). */
  override get hasMmap(): boolean {
    return this.vm.profile.gmem.mmap;
  }

  /** kvm_gmem_mmap() (6.18+). Before 6.18 guest_memfd has no ->mmap: -ENODEV. */
  override mmap(req: MmapRequest): MmapBacking {
    if (!this.vm.profile.gmem.mmap) return super.mmap(req);
    if (!this.inode.supportsMmap) throw kerr('ENODEV', 'kvm_gmem_mmap: file lacks GUEST_MEMFD_FLAG_MMAP');
    const type = req.flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE) {
      throw kerr('EINVAL', 'kvm_gmem_mmap: copy-on-write (MAP_PRIVATE) not allowed');
    }
    return new GmemUserMapping(this);
  }

  /**
   * kvm_gmem_release(): unbind every slot, zap what was mapped through this file, drop the VM.
   * The zap is kvm_gmem_invalidate_begin(f, 0, -1ul) with the file's invalidation filter
   * (6.14 .. 6.17: KVM_FILTER_PRIVATE; 6.18+: kvm_gmem_get_invalidate_filter(inode)).
   */
  protected release(): void {
    const vm = this.vm;
    const filter = gmemInvalidateFilter(vm, this.inode);
    vm.host.invariants.gmemInvalidateWalk(this, 0, Number.MAX_SAFE_INTEGER);
    for (const e of this.bindings.entries()) {
      const slot = e.value;
      if (slot.gmem) slot.gmem.file = null;
      const gfn = slot.baseGfn + (e.start - slot.gmem!.pgoff);
      // The deliberately broken profile leaves the SPTEs (the invariants find them from the SPTE side).
      if (vm.profile.bugs?.noZapOnRelease) continue;
      vm.mmu.zapGfnRange(gfn, gfn + (e.end - e.start), filter, 'kvm_gmem_release');
    }
    this.bindings.clear();
    this.inode.files.delete(this);
    vm.gmemFiles.delete(this);
    // The memory belongs to the inode; the inode goes with its last file (anon inode, no other opener).
    if (this.inode.files.size === 0) freeFolios(this.inode, 0, this.inode.npages);
    vm.put();
  }
}

/** KVM_CREATE_GUEST_MEMFD: kvm_gmem_create(), checks in its order. */
export function createGuestMemfd(vm: Vm, arg: unknown): number {
  const s = copyFromUser(arg, 'kvm_create_guest_memfd');
  const size = s64(s, 'size');
  const flags = u64(s, 'flags');
  if (flags & ~BigInt(supportedGmemFlags(vm.profile, vm)))
    throw kerr('EINVAL', `kvm_gmem_create: flags 0x${flags.toString(16)} not supported`);
  if (size <= 0n || !pageAligned(size))
    throw kerr('EINVAL', 'kvm_gmem_create: size <= 0 or not page aligned');
  const host = vm.host;
  const inode = new GmemInode(host, host.nextIno(), size, flags, host.reservePfns(Number(size >> 12n)), vm);
  const file = new GmemFile(vm, inode);
  inode.files.add(file);
  vm.gmemFiles.add(file);
  vm.get(); // the file pins the VM
  return host.fds.install(file);
}

/** kvm_gmem_get_supported_flags() (6.18+) for `vm`, or for /dev/kvm (no VM); 0 before. */
export function supportedGmemFlags(profile: KernelProfile, vm: Vm | undefined): number {
  if (!profile.gmem.mmap) return 0;
  let flags = GUEST_MEMFD_FLAG_MMAP;
  // x86 kvm_arch_supports_gmem_init_shared(): only VMs without private memory.
  if (!vm?.arch.hasPrivateMem) flags |= GUEST_MEMFD_FLAG_INIT_SHARED;
  // kvm_arch_gmem_supports_no_direct_map(): not for TDX and SNP, which populate through the direct
  // map (can_set_direct_map() is taken to hold).
  if (profile.gmem.noDirectMap && (!vm || (vm.type !== KVM_X86_TDX_VM && vm.type !== KVM_X86_SNP_VM)))
    flags |= GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
  return flags;
}

/** kvm_gmem_bind(), checks in its order. Returns what the slot records. */
export function kvmGmemBind(
  vm: Vm,
  fd: number,
  offset: bigint,
  npages: number,
): { file: GmemFile; pgoff: number; gmemOnly: boolean } {
  const f = vm.host.fds.fget(fd);
  if (!f) throw kerr('EBADF', `kvm_gmem_bind: fd ${fd} is not open`);
  try {
    if (!(f instanceof GmemFile))
      throw kerr('EINVAL', `kvm_gmem_bind: fd ${fd} is not a guest_memfd (${f.kind})`);
    if (f.vm !== vm) throw kerr('EINVAL', 'kvm_gmem_bind: guest_memfd belongs to another VM');
    const off = BigInt.asIntN(64, offset);
    // offset + size is loff_t arithmetic, which wraps (the kernel builds with -fno-strict-overflow):
    // an offset just below 2^63 passes and binds far beyond the file (seen on a 6.18 host).
    if (off < 0n || !pageAligned(off) || BigInt.asIntN(64, off + BigInt(npages) * 4096n) > f.inode.size) {
      throw kerr('EINVAL', 'kvm_gmem_bind: offset unaligned or range beyond the file');
    }
    const start = Number(off >> 12n);
    const taken = f.bindings.nextExtent(start);
    if (taken && taken.start < start + npages) {
      throw kerr('EINVAL', `kvm_gmem_bind: file range already bound to slot ${taken.value.id}`);
    }
    return { file: f, pgoff: start, gmemOnly: vm.profile.gmem.mmap && f.inode.supportsMmap };
  } finally {
    f.put(); // the file pins KVM, not the other way round
  }
}

/** kvm_gmem_unbind(): a no-op once the file is closed. */
export function kvmGmemUnbind(slot: Memslot): void {
  const file = slot.gmem?.file;
  if (!file) return;
  const start = slot.gmem!.pgoff;
  for (const e of file.bindings.entries(start, start + slot.npages)) {
    if (e.value === slot) file.bindings.set(e.start, e.end, undefined);
  }
  slot.gmem!.file = null;
}

/** A newly allocated folio, made by the current syscall at `site`. */
function newFolio(vm: Vm, content: FolioContent, uptodate: boolean, site: Site): Folio {
  return folioOf(vm.host.nextFolioGen(), content, uptodate, vm.host.tracer.seq, site);
}

/** kvm_gmem_allocate(): offset + len beyond i_size -> -EINVAL; then one folio per page. */
function allocate(file: GmemFile, rangeEnd: bigint, start: number, end: number): void {
  const inode = file.inode;
  if (rangeEnd > inode.size) throw kerr('EINVAL', 'kvm_gmem_allocate: range beyond i_size');
  const vm = file.vm;
  // The loop checks signal_pending() before each page; a signal pending at the call stops it
  // before the first.
  if (vm.host.signalPending) throw kerr('EINTR', 'kvm_gmem_allocate: signal pending');
  const prep = vm.profile.gmem.preparation;
  const t = vm.host.tracer;
  // 6.8 and 6.11-rc1: kvm_gmem_get_folio() clears and marks up to date; 6.11+: allocate only.
  const zeroes = getFolioZeroes(prep);
  const site = zeroes ? t.siteIn(GET_FOLIO, 'folio_mark_uptodate') : t.site('kvm_gmem_get_folio');
  let folio: Folio | undefined;
  const added: Array<[number, number]> = [];
  const rollback = prep === 'coco-hooks';
  inode.folios.update(start, end, (f, a, b) => {
    if (f) return f;
    if (rollback) added.push([a, b]);
    folio ??= newFolio(vm, zeroes ? 'zero' : 'garbage', zeroes, site);
    return folio;
  });
  // 6.11-rc1: kvm_gmem_allocate() calls kvm_gmem_get_folio(prepare=true), which prepares every
  // page for every VM that has it bound. A failing hook ends the loop: the page it failed on stays
  // in the page cache, the pages after it were never allocated.
  if (prep === 'coco-hooks') {
    t.enter('kvm_gmem_get_folio');
    let i = start;
    try {
      for (; i < end; i++) archPrepareAllBindings(inode, i);
    } catch (e) {
      for (const [a, b] of added) if (b > i + 1) inode.folios.set(Math.max(a, i + 1), b, undefined);
      vm.host.invariants.touchGmem(inode, start, end);
      throw e;
    } finally {
      t.leave();
    }
  }
  vm.host.invariants.touchGmem(inode, start, end);
}

/** 6.11-rc1 kvm_gmem_prepare_folio(): the arch hook of every VM that has the index bound. */
function archPrepareAllBindings(inode: GmemInode, index: number): void {
  const t = inode.host.tracer;
  t.enter('kvm_gmem_prepare_folio');
  try {
    for (const f of inode.files) {
      const slot = f.bindings.get(index);
      const arch = f.vm.arch;
      if (!slot || !arch.gmemPrepare) continue;
      const gfn = slot.baseGfn + (index - slot.gmem!.pgoff);
      t.enter('kvm_arch_gmem_prepare');
      try {
        arch.gmemPrepare(gfn, inode.pfn(index));
      } finally {
        t.leave();
      }
    }
  } finally {
    t.leave();
  }
}

/**
 * The attr_filter of a guest_memfd invalidation (kvm_gmem_invalidate_begin, also used by release
 * and memory failure): none before 6.14 (both kinds); 6.14 .. 6.17 KVM_FILTER_PRIVATE ("guest memfd
 * is relevant to only private mappings"); 6.18+ kvm_gmem_get_invalidate_filter(): SHARED for an
 * INIT_SHARED file, else PRIVATE. Only a TD's MMU tells the kinds apart (Mmu.zapGfnRange).
 */
export function gmemInvalidateFilter(vm: Vm, inode: GmemInode): ZapFilter {
  if (!vm.profile.mmu.gfnRangeFilter) return 'all';
  return vm.profile.gmem.mmap && inode.initShared ? 'shared' : 'private';
}

/** kvm_gmem_punch_hole(): invalidate mappings of every bound slot, then truncate the page cache. */
function punchHole(inode: GmemInode, start: number, end: number): void {
  const last = Math.min(end, inode.npages);
  for (const f of inode.files) {
    // kvm_gmem_invalidate_begin(): zap through every binding in range.
    const filter = gmemInvalidateFilter(f.vm, inode);
    f.vm.host.invariants.gmemInvalidateWalk(f, start, last);
    if (f.vm.profile.bugs?.noZapOnPunchHole) continue;
    if (last - start === 1) {
      // One page (QEMU discards a converted page at a time): its binding, without an iterator.
      const slot = f.bindings.get(start);
      if (slot === undefined) continue;
      const gfn = slot.baseGfn + (start - slot.gmem!.pgoff);
      f.vm.mmu.zapGfnRange(gfn, gfn + 1, filter, 'kvm_gmem_invalidate_begin');
      continue;
    }
    for (const e of f.bindings.entries(start, last)) {
      const slot = e.value;
      const gfn = slot.baseGfn + (e.start - slot.gmem!.pgoff);
      f.vm.mmu.zapGfnRange(gfn, gfn + (e.end - e.start), filter, 'kvm_gmem_invalidate_begin');
    }
  }
  if (start < last) freeFolios(inode, start, last);
}

/** truncate_inode_pages_range() + ->free_folio (kvm_arch_gmem_invalidate, SNP: RMP back to hypervisor). */
function freeFolios(inode: GmemInode, start: number, end: number): void {
  const host = inode.host;
  if (end - start === 1) {
    // One page (QEMU discards a converted page at a time): a lookup, no iterator or list.
    if (inode.folios.get(start) === undefined) return;
    inode.folios.set(start, end, undefined);
    // Page bytes are kept only for written pages.
    inode.data.delete(start);
    host.platform.gmemInvalidate?.(inode.pfn(start), inode.pfn(end));
    host.invariants.foliosFreed(inode, start, end);
    return;
  }
  const freed: Array<[number, number]> = [];
  for (const e of inode.folios.entries(start, end)) freed.push([e.start, e.end]);
  if (freed.length === 0) return;
  inode.folios.set(start, end, undefined);
  inode.data.drop(start, end);
  for (const [s, e] of freed) host.platform.gmemInvalidate?.(inode.pfn(s), inode.pfn(e));
  host.invariants.foliosFreed(inode, start, end);
}

/** kvm_gmem_get_index(): the page of the slot's guest_memfd that backs gfn. */
export function kvmGmemGetIndex(slot: Memslot, gfn: number): number {
  return slot.gmem!.pgoff + (gfn - slot.baseGfn);
}

/** kvm_gmem_get_folio() clears a new folio and marks it up to date (6.8, 6.11-rc1). */
function getFolioZeroes(prep: GmemPreparation): boolean {
  return prep === 'zero-on-get-folio' || prep === 'coco-hooks';
}

/** Callees from kvm_gmem_allocate() / kvm_gmem_get_pfn() (6.8) to the page-cache allocation. */
const GET_FOLIO = ['kvm_gmem_get_folio'] as const;
/** From kvm_gmem_get_pfn() (6.11-rc1+) or kvm_gmem_populate(): __kvm_gmem_get_pfn() allocates. */
const GET_PFN_GET_FOLIO = ['__kvm_gmem_get_pfn', 'kvm_gmem_get_folio'] as const;
/** 6.11..6.19: kvm_gmem_prepare_folio() > kvm_gmem_mark_prepared() sets PG_uptodate. */
const PREPARE_MARK = ['kvm_gmem_prepare_folio', 'kvm_gmem_mark_prepared'] as const;
const MARK_PREPARED = ['kvm_gmem_mark_prepared'] as const;

/**
 * __kvm_gmem_get_pfn() common part (6.8: inline in kvm_gmem_get_pfn()): file, binding, folio
 * (allocated if absent). Records are made under the caller's frame (kvm_gmem_get_pfn or
 * kvm_gmem_populate).
 */
function gmemGetFolio(
  vm: Vm,
  slot: Memslot,
  gfn: number,
  /**
   * get_pfn fast path: a fresh allocation is stored as the zeroed, up-to-date folio get_pfn makes
   * of it (freshFolio()), recorded where that kernel sets PG_uptodate.
   */
  fresh?: FreshFolio,
): Folio {
  const file = slot.gmem?.file;
  if (!file) throw kerr('EFAULT', 'kvm_gmem_get_pfn: guest_memfd closed or slot not bound', slotCause(slot));
  const index = kvmGmemGetIndex(slot, gfn);
  if (file.bindings.get(index) !== slot)
    throw kerr('EIO', 'kvm_gmem_get_pfn: binding does not match the slot (WARN)');
  const inode = file.inode;
  let folio = inode.folios.get(index);
  const t = vm.host.tracer;
  if (!folio && fresh !== undefined) {
    // 6.11..6.19 kvm_gmem_get_pfn() > kvm_gmem_prepare_folio() > kvm_gmem_mark_prepared();
    // 7.0 kvm_gmem_get_pfn() itself.
    const site =
      fresh === 'prepared' ? t.siteIn(PREPARE_MARK, 'folio_mark_uptodate') : t.site('folio_mark_uptodate');
    folio = newFolio(vm, 'zero', true, site);
    inode.folios.set(index, index + 1, folio);
  } else if (!folio) {
    const prep = vm.profile.gmem.preparation;
    const zeroes = getFolioZeroes(prep);
    // 6.8 kvm_gmem_get_pfn() calls kvm_gmem_get_folio() itself; later kernels through __kvm_gmem_get_pfn().
    const callees = prep === 'zero-on-get-folio' ? GET_FOLIO : GET_PFN_GET_FOLIO;
    const site = t.siteIn(callees, zeroes ? 'folio_mark_uptodate' : '');
    // bugs.noClearOnPrepare: 6.8 / 6.11-rc1 mark the folio up to date without clear_highpage().
    const cleared = zeroes && !vm.profile.bugs?.noClearOnPrepare;
    folio = newFolio(vm, cleared ? 'zero' : 'garbage', zeroes, site);
    inode.folios.set(index, index + 1, folio);
  }
  return folio;
}

function slotCause(slot: Memslot): string {
  return `memslot ${slot.id} created by ${describeProvenance(slot.since)}`;
}

function setFolio(inode: GmemInode, index: number, folio: Folio): Folio {
  inode.folios.set(index, index + 1, folio);
  return folio;
}

/**
 * kvm_gmem_get_pfn(): the folio a private fault maps, prepared as the profile's kernel prepares it
 * (the caller has its inode, the slot's guest_memfd, and its index, kvmGmemGetIndex()).
 * Errors: -EFAULT (no file), -EIO (binding), -EHWPOISON, or the arch prepare hook's errno.
 */
export function kvmGmemGetPfn(vm: Vm, slot: Memslot, gfn: number): Folio {
  const t = vm.host.tracer;
  t.enter('kvm_gmem_get_pfn');
  try {
    const prep = vm.profile.gmem.preparation;
    let folio = gmemGetFolio(vm, slot, gfn, freshFolio(vm, prep));
    const inode = slot.gmem!.file!.inode;
    const index = kvmGmemGetIndex(slot, gfn);
    const pfn = inode.pfn(index);
    if (prep === 'coco-hooks') {
      // __kvm_gmem_get_pfn() > kvm_gmem_get_folio(prepare=true): the hook runs on every call, for
      // every bound VM; the folio stays up to date even if the hook fails. hwpoison is checked
      // afterwards, in __kvm_gmem_get_pfn().
      t.enter('__kvm_gmem_get_pfn');
      t.enter('kvm_gmem_get_folio');
      try {
        archPrepareAllBindings(inode, index);
      } finally {
        t.leave();
        t.leave();
      }
    }
    if (folio.hwpoison)
      throw kerr(
        'EHWPOISON',
        'kvm_gmem_get_pfn: folio is hwpoisoned',
        `since ${describeProvenance(folio.since)}`,
      );
    if (prep === 'prepared' && !folio.uptodate) {
      folio = t.within('kvm_gmem_prepare_folio', () => prepareFolio(vm, inode, index, gfn, pfn));
    } else if (prep === 'zeroed') {
      if (!folio.uptodate) {
        // 7.0 kvm_gmem_get_pfn(): clear_highpage() + folio_mark_uptodate() (bugs.noClearOnPrepare
        // drops the clear, so the host's old bytes reach the guest).
        const clear = !vm.profile.bugs?.noClearOnPrepare;
        const site = t.site('folio_mark_uptodate');
        folio = setFolio(inode, index, folioUptodate(folio, clear ? 'zero' : folio.content, t.seq, site));
        if (clear) inode.data.delete(index);
      }
      // 7.0 kvm_gmem_prepare_folio(): the arch hook runs on every fault; a failure leaves the
      // folio up to date (zeroed).
      const hook = vm.arch.gmemPrepare;
      if (hook) {
        t.enter('kvm_gmem_prepare_folio');
        t.enter('kvm_arch_gmem_prepare');
        try {
          hook.call(vm.arch, gfn, pfn);
        } finally {
          t.leave();
          t.leave();
        }
      }
    }
    vm.host.invariants.touchGmem(inode, index, index + 1);
    // An arch hook may have written the page (e.g. through gmemWritePage): read the folio back.
    const hooked = prep === 'coco-hooks' || vm.arch.gmemPrepare !== undefined;
    return hooked ? inode.folios.get(index)! : folio;
  } finally {
    t.leave();
  }
}

/**
 * A fresh folio that get_pfn will clear and mark up to date with nothing observable in between
 * (no arch hook, no deliberate bug): store its final state in one page-cache update instead of
 * three. 6.11..6.19: allocated, cleared by kvm_gmem_prepare_folio(), marked prepared; 7.0: cleared
 * and marked by kvm_gmem_get_pfn(). Undefined where the steps must stay separate.
 */
type FreshFolio = 'prepared' | 'zeroed';

function freshFolio(vm: Vm, prep: GmemPreparation): FreshFolio | undefined {
  if (vm.arch.gmemPrepare || vm.profile.bugs?.noClearOnPrepare) return undefined;
  if (prep === 'prepared') return vm.profile.gmem.skipUptodateForUnfinalizedTd ? undefined : 'prepared';
  if (prep === 'zeroed') return 'zeroed';
  return undefined;
}

/** 6.11..6.19 kvm_gmem_prepare_folio(): clear, arch hook, then mark up to date ("prepared"). */
function prepareFolio(vm: Vm, inode: GmemInode, index: number, gfn: number, pfn: number): Folio {
  const t = vm.host.tracer;
  const old = inode.folios.get(index)!;
  let folio = old;
  const hook = vm.arch.gmemPrepare;
  if (!hook && !vm.profile.bugs?.noClearOnPrepare && !vm.profile.gmem.skipUptodateForUnfinalizedTd) {
    // Nothing can observe the state between the clear and the mark: one update.
    const site = t.siteIn(MARK_PREPARED, 'folio_mark_uptodate');
    inode.data.delete(index);
    return setFolio(inode, index, folioUptodate(old, 'zero', t.seq, site));
  }
  if (!vm.profile.bugs?.noClearOnPrepare) {
    folio = setFolio(inode, index, folioChanged(old, 'zero', t.seq, t.site('clear_highpage')));
    inode.data.delete(index);
  }
  if (hook) t.within('kvm_arch_gmem_prepare', () => hook.call(vm.arch, gfn, pfn));
  // The July 2024 POC: no folio_mark_uptodate() for a TD that is not finalized (M-seed).
  if (vm.profile.gmem.skipUptodateForUnfinalizedTd && vm.arch.name === 'tdx' && !vm.arch.finalized?.()) {
    return folio;
  }
  const site = t.siteIn(MARK_PREPARED, 'folio_mark_uptodate');
  return setFolio(inode, index, folioUptodate(folio, folio.content, t.seq, site));
}

/** The vendor callback of kvm_gmem_populate(): writes the page (SNP LAUNCH_UPDATE, TDX PAGE.ADD). */
export type PostPopulate = (ctx: {
  gfn: number;
  pfn: number;
  inode: GmemInode;
  index: number;
  /** Host address of this page's source, or null. */
  src: number | null;
  /** 7.0: the source page already pinned by common code (null = zero page or no source). */
  srcPage: Uint8Array | null | undefined;
  slot: Memslot;
}) => void;

/**
 * A run of pages handed to a vendor's PostPopulateRun: `n` pages from `gfn` / `index` / `pfn`, with
 * fresh folios (allocated by populate, not yet written), bound to `slot`, private where the profile
 * requires it, and (when `src` is not null) page-aligned source pages in one readable anonymous
 * mapping. `write(i, bytes)` is what gmemWritePage() does to page i, minus the page-cache update,
 * which common code makes for the whole run.
 */
export interface PopulateRun {
  gfn: number;
  pfn: number;
  inode: GmemInode;
  index: number;
  n: number;
  src: number | null;
  slot: Memslot;
  /** Folio generation of the run's pages (what a mapping of them records). */
  gen: number;
  write(i: number, bytes: Uint8Array | null): void;
}

/**
 * A vendor's post_populate for a run of pages: an optimisation of PostPopulate with the same
 * results. It returns how many pages from the first it did, each exactly as PostPopulate would
 * have, and stops before (leaves untouched) a page PostPopulate would fail on or that it cannot
 * take in a run; common code then does that page through the per-page path.
 */
export type PostPopulateRun = (run: PopulateRun) => number;

/** Off only in tests that compare the run path with the per-page path. */
let populateRuns = true;
export function setPopulateRuns(on: boolean): void {
  populateRuns = on;
}

/**
 * How many pages from gfn the run path may take (0 or 1: per page). The pages must be ones the
 * per-page path would take without an error from common code or from reading the source:
 * bound to `slot`, no folio yet, private where required, no pending signal, source pages readable.
 * Only the kernels that mark populated folios up to date after the callback (6.11+ 'prepared',
 * 7.0 'zeroed'); older ones allocate zeroed folios, and go page by page.
 */
function populateRunLength(vm: Vm, slot: Memslot, gfn: number, src: number | null, max: number): number {
  const g = vm.profile.gmem;
  if (!populateRuns || max < 2 || getFolioZeroes(g.preparation)) return 0;
  if (g.populateChecksSignals && vm.host.signalPending) return 0;
  const file = slot.gmem?.file;
  if (!file) return 0;
  const index = kvmGmemGetIndex(slot, gfn);
  const bound = file.bindings.extentAt(index);
  if (bound?.value !== slot) return 0;
  let n = Math.min(max, bound.end - index);
  const folio = file.inode.folios.nextExtent(index);
  if (folio !== undefined) n = Math.min(n, folio.start - index);
  if (g.populateRequiresPrivate) {
    const a = vm.attributes.extentAt(gfn);
    if (a === undefined || !(wordAttributes(a.value) & KVM_MEMORY_ATTRIBUTE_PRIVATE)) return 0;
    n = Math.min(n, a.end - gfn);
  }
  if (src !== null) {
    if (src % PAGE_SIZE !== 0) return 0;
    n = Math.min(n, vm.host.mm.anonReadablePages(src, n));
  }
  return n;
}

/**
 * kvm_gmem_populate() over a run: the vendor's run callback, then the final page-cache state of
 * the pages it did, as populateOne() leaves them (content as written, up to date, recorded where
 * the kernel marks them); the intermediate states of each page are not stored. One folio
 * generation for the run: pages allocated by one call share it, as fallocate's do.
 */
function populateRun(
  vm: Vm,
  slot: Memslot,
  gfn: number,
  src: number | null,
  n: number,
  postRun: PostPopulateRun,
): number {
  const t = vm.host.tracer;
  const inode = slot.gmem!.file!.inode;
  const index = kvmGmemGetIndex(slot, gfn);
  // What each page holds once the vendor is done: untouched pages keep the host's old bytes.
  const kinds: FolioContent[] = new Array<FolioContent>(n).fill('garbage');
  const gen = vm.host.nextFolioGen();
  const done = postRun({
    gfn,
    pfn: inode.pfn(index),
    inode,
    index,
    n,
    src,
    slot,
    gen,
    write(i, bytes) {
      if (bytes === null || isZero(bytes)) {
        inode.data.delete(index + i);
        kinds[i] = 'zero';
      } else {
        // The source page's array itself: stored pages are never changed (page-bytes.ts pageWith()).
        inode.data.set(index + i, bytes.length === PAGE_SIZE ? bytes : padPage(bytes));
        kinds[i] = 'data';
      }
    },
  });
  if (done <= 0) return 0;
  const site =
    vm.profile.gmem.preparation === 'prepared'
      ? t.siteIn(MARK_PREPARED, 'folio_mark_uptodate')
      : t.site('folio_mark_uptodate');
  const byKind = new Map<FolioContent, Folio>();
  for (let a = 0; a < done; ) {
    const kind = kinds[a]!;
    let b = a + 1;
    while (b < done && kinds[b] === kind) b++;
    let folio = byKind.get(kind);
    if (folio === undefined) {
      folio = folioOf(gen, kind, true, t.seq, site);
      byKind.set(kind, folio);
    }
    inode.folios.set(index + a, index + b, folio);
    a = b;
  }
  vm.host.invariants.touchGmem(inode, index, index + done);
  return done;
}

/**
 * The run path of kvm_gmem_populate() alone, for a caller that loops over single-page populate
 * calls (TDX INIT_MEM_REGION): up to `max` pages from startGfn in one go, as that many calls of
 * one page each would do them. Returns how many pages it did; 0 means none (the caller goes on
 * page by page, which also reports any error).
 */
export function kvmGmemPopulateRun(
  vm: Vm,
  startGfn: number,
  src: number | null,
  max: number,
  postRun: PostPopulateRun,
): number {
  const slot = vm.memslots.lookup(startGfn);
  if (!slot?.gmem?.file) return 0;
  const run = populateRunLength(
    vm,
    slot,
    startGfn,
    src,
    Math.min(max, slot.baseGfn + slot.npages - startGfn),
  );
  if (run < 2) return 0;
  const t = vm.host.tracer;
  t.enter('kvm_gmem_populate');
  try {
    return populateRun(vm, slot, startGfn, src, run, postRun);
  } finally {
    t.leave();
  }
}

/**
 * kvm_gmem_populate(): copy user data into guest_memfd pages through a vendor callback.
 * Returns the number of pages done, or throws the first page's error (`ret && !i ? ret : i`).
 */
export function kvmGmemPopulate(
  vm: Vm,
  startGfn: number,
  src: number | null,
  npages: number,
  post: PostPopulate,
  postRun?: PostPopulateRun,
): number {
  const t = vm.host.tracer;
  const g = vm.profile.gmem;
  t.enter('kvm_gmem_populate');
  try {
    if (g.populateRejectsEmpty ? npages <= 0 : npages < 0)
      throw kerr('EINVAL', `kvm_gmem_populate: npages ${g.populateRejectsEmpty ? '<=' : '<'} 0 (WARN)`);
    if (g.populateGupInCommonCode && src !== null && src % PAGE_SIZE !== 0)
      throw kerr('EINVAL', 'kvm_gmem_populate: src not page aligned (WARN)');
    const slot = vm.memslots.lookup(startGfn);
    if (!slot?.gmem)
      throw kerr(
        'EINVAL',
        'kvm_gmem_populate: gfn is not in a guest_memfd memslot',
        gmemSlotCause(vm, startGfn),
      );
    if (!slot.gmem.file) throw kerr('EFAULT', 'kvm_gmem_populate: guest_memfd closed', slotCause(slot));
    const n = Math.min(npages, slot.baseGfn + slot.npages - startGfn);
    let i = 0;
    let err: unknown;
    while (i < n) {
      const pageSrc = src === null ? null : src + i * PAGE_SIZE;
      const run = postRun === undefined ? 0 : populateRunLength(vm, slot, startGfn + i, pageSrc, n - i);
      if (run > 1) {
        const done = populateRun(vm, slot, startGfn + i, pageSrc, run, postRun!);
        i += done;
        if (done === run) continue;
      }
      // One page the kernel's way; also the page a run stopped before, which fails here as it must.
      try {
        populateOne(vm, slot, startGfn + i, src === null ? null : src + i * PAGE_SIZE, post);
      } catch (e) {
        err = e;
        break;
      }
      i++;
    }
    if (err !== undefined && i === 0) throw err;
    return i;
  } finally {
    t.leave();
  }
}

function populateOne(vm: Vm, slot: Memslot, gfn: number, src: number | null, post: PostPopulate): void {
  const t = vm.host.tracer;
  const g = vm.profile.gmem;
  if (g.populateChecksSignals && vm.host.signalPending)
    throw kerr('EINTR', 'kvm_gmem_populate: signal pending');
  let srcPage: Uint8Array | null | undefined;
  if (g.populateGupInCommonCode && src !== null) {
    srcPage = t.within('get_user_pages_fast', () => vm.host.mm.gupRead(src));
  }
  const folio = gmemGetFolio(vm, slot, gfn);
  const inode = slot.gmem!.file!.inode;
  const index = kvmGmemGetIndex(slot, gfn);
  if (folio.hwpoison) throw kerr('EHWPOISON', 'kvm_gmem_populate: folio is hwpoisoned');
  if (g.populateRejectsUptodate && folio.uptodate) {
    throw kerr(
      'EEXIST',
      'kvm_gmem_populate: folio already up to date (prepared)',
      `gfn 0x${gfn.toString(16)}: folio up to date since ${describeProvenance(folio.uptodateSince ?? folio.since)}`,
    );
  }
  if (g.populateRequiresPrivate && !(vm.memoryAttributes(gfn) & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
    throw kerr('EINVAL', 'kvm_gmem_populate: gfn is not private', vm.attributeCause(gfn));
  }
  const pfn = inode.pfn(index);
  post({ gfn, pfn, inode, index, src, srcPage, slot });
  if (!getFolioZeroes(g.preparation)) {
    // Once the callback succeeded: 6.11..6.19 kvm_gmem_mark_prepared(), 7.0 folio_mark_uptodate().
    const cur = inode.folios.get(index)!;
    const site =
      g.preparation === 'prepared'
        ? t.siteIn(MARK_PREPARED, 'folio_mark_uptodate')
        : t.site('folio_mark_uptodate');
    inode.folios.set(index, index + 1, folioUptodate(cur, cur.content, t.seq, site));
  }
  vm.host.invariants.touchGmem(inode, index, index + 1);
}

/** Write a page of guest_memfd (what a populate callback or the TDX module does to the private page). */
export function gmemWritePage(
  host: { tracer: Tracer },
  inode: GmemInode,
  index: number,
  bytes: Uint8Array | null,
  leaf: string,
): void {
  const cur = inode.folios.get(index);
  if (!cur) throw new KernelError('EIO', 'gmemWritePage: no folio (model defect)');
  const seq = host.tracer.seq;
  const site = host.tracer.site(leaf);
  if (bytes === null || isZero(bytes)) {
    inode.data.delete(index);
    inode.folios.set(index, index + 1, folioChanged(cur, 'zero', seq, site));
  } else {
    // The caller's array itself: stored pages are never changed (page-bytes.ts pageWith()).
    inode.data.set(index, bytes.length === PAGE_SIZE ? bytes : padPage(bytes));
    inode.folios.set(index, index + 1, folioChanged(cur, 'data', seq, site));
  }
}

function padPage(b: Uint8Array): Uint8Array {
  const p = new Uint8Array(PAGE_SIZE);
  p.set(b.subarray(0, PAGE_SIZE));
  return p;
}

/** Compared against natively: a byte loop over every written page is slow until V8 optimises it. */
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

function isZero(b: Uint8Array): boolean {
  // Most pages that are not zero say so in their first bytes: skip the compare call for them.
  if (b.length === 0 || b[0] !== 0 || b[b.length - 1] !== 0) return b.length === 0;
  if (b.length === PAGE_SIZE) return Buffer.compare(b, ZERO_PAGE) === 0;
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

const USER_FAULT = ['kvm_gmem_fault_user_mapping'] as const;
const USER_FAULT_MARK_PREPARED = ['kvm_gmem_fault_user_mapping', 'kvm_gmem_mark_prepared'] as const;

/** The user mapping of a guest_memfd (6.18+): kvm_gmem_fault_user_mapping() per page. */
class GmemUserMapping implements MmapBacking {
  readonly noDirectMap: boolean;
  constructor(private readonly file: GmemFile) {
    this.noDirectMap = file.inode.noDirectMap;
  }

  private fault(pgoff: number): { inode: GmemInode; folio: Folio } {
    const inode = this.file.inode;
    const host = this.file.host;
    const addr = BigInt(pgoff) << 12n;
    if (pgoff >= inode.npages) throw new HostFault('SIGBUS', addr, 'guest_memfd fault beyond i_size');
    if (!inode.initShared && !this.file.vm.profile.bugs?.hostMapsPrivate) {
      throw new HostFault('SIGBUS', addr, 'guest_memfd page is private (no INIT_SHARED)');
    }
    let folio = inode.folios.get(pgoff);
    // __do_fault(): the folio kvm_gmem_fault_user_mapping() returns is poisoned: VM_FAULT_HWPOISON.
    if (folio?.hwpoison) throw new HostFault('SIGBUS', addr, 'guest_memfd page is hwpoisoned', true);
    if (!folio?.uptodate) {
      // clear_highpage(), then 6.18/6.19 kvm_gmem_mark_prepared(), 7.0 folio_mark_uptodate().
      const prepared = this.file.vm.profile.gmem.preparation === 'prepared';
      const site = host.tracer.siteIn(
        prepared ? USER_FAULT_MARK_PREPARED : USER_FAULT,
        'folio_mark_uptodate',
      );
      folio = folioOf(folio?.gen ?? host.nextFolioGen(), 'zero', true, host.tracer.seq, site);
      inode.folios.set(pgoff, pgoff + 1, folio);
      inode.data.delete(pgoff);
    }
    return { inode, folio };
  }

  /**
   * kvm_gmem_fault_user_mapping() over a run (MADV_POPULATE_*): the checks of fault() for the run,
   * then every folio of it up to date (cleared where it was not), by extents, not page by page.
   */
  populate(first: number, end: number): void {
    const inode = this.file.inode;
    const stop = Math.min(end, inode.npages);
    if (first < stop) {
      // No INIT_SHARED: the first page already faults.
      if (!inode.initShared && !this.file.vm.profile.bugs?.hostMapsPrivate) this.fault(first);
      for (let a = first; a < stop; ) {
        const cur = inode.folios.extentAt(a);
        const next = cur ? undefined : inode.folios.nextExtent(a);
        const b = Math.min(cur ? cur.end : next ? next.start : stop, stop);
        if (cur?.value.hwpoison) this.fault(a); // SIGBUS
        if (!cur?.value.uptodate) {
          const prepared = this.file.vm.profile.gmem.preparation === 'prepared';
          const t = this.file.host.tracer;
          const site = t.siteIn(prepared ? USER_FAULT_MARK_PREPARED : USER_FAULT, 'folio_mark_uptodate');
          const gen = cur?.value.gen ?? this.file.host.nextFolioGen();
          inode.folios.set(a, b, folioOf(gen, 'zero', true, t.seq, site));
          inode.data.drop(a, b);
        }
        a = b;
      }
    }
    if (end > inode.npages) this.fault(Math.max(first, inode.npages)); // SIGBUS beyond i_size
  }

  readPage(pgoff: number): Uint8Array | null {
    const { inode } = this.fault(pgoff);
    this.file.host.invariants.hostAccess(inode, pgoff);
    return inode.readPage(pgoff);
  }

  writePage(pgoff: number, offsetInPage: number, bytes: Uint8Array): void {
    const { inode, folio } = this.fault(pgoff);
    this.file.host.invariants.hostAccess(inode, pgoff);
    // The page's current bytes: an up-to-date folio is not cleared by the fault, so a store into a
    // never-cleared page (bugs.noClearOnPrepare) keeps the host's old bytes around it.
    const cur = inode.folioBytes(pgoff, folio);
    if (folio.content !== 'data')
      inode.folios.set(pgoff, pgoff + 1, folioChanged(folio, 'data', folio.seq, folio.site));
    inode.data.set(pgoff, pageWith(cur, offsetInPage, bytes));
  }
}

/**
 * memory_failure() on a guest_memfd page (kvm_gmem_error_folio): zap mappings, keep the folio, poison
 * it. The zap is kvm_gmem_invalidate_begin() over the folio, so with the same filter as a punch-hole.
 */
export function gmemMemoryFailure(file: GmemFile, index: number): void {
  const inode = file.inode;
  const folio = inode.folios.get(index);
  if (!folio) throw kerr('EINVAL', 'memory_failure: page not allocated');
  for (const f of inode.files) {
    f.vm.host.invariants.gmemInvalidateWalk(f, index, index + 1);
    const slot = f.bindings.get(index);
    if (!slot) continue;
    const gfn = slot.baseGfn + (index - slot.gmem!.pgoff);
    f.vm.mmu.zapGfnRange(gfn, gfn + 1, gmemInvalidateFilter(f.vm, inode), 'kvm_gmem_error_folio');
  }
  inode.folios.set(
    index,
    index + 1,
    folioChanged(folio, folio.content, file.host.tracer.seq, file.host.tracer.site('memory_failure'), true),
  );
}
