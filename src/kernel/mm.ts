/**
 * The modelled process's address space (mm/mmap.c, mm/memory.c): anonymous and file-backed VMAs.
 * Anonymous memory keeps bytes only for pages that were written; everything else reads as zero.
 * An access outside every VMA is SIGSEGV; a file's fault handler may answer SIGBUS.
 */

import { ExtentMap } from '../ranges/extent-map.js';
import {
  LEGACY_MAP_MASK,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_MERGEABLE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_UNMERGEABLE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
} from '../uapi/mman.js';
import { AnonPages } from './anon-pages.js';
import { HostFault, kerr } from './errors.js';
import type { KFile, MmapBacking } from './file.js';
import { pageWith } from './page-bytes.js';
import type { Provenance } from './provenance.js';
import { pageAlignedNum, scalar } from './uaccess.js';

export interface Vma {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
  readonly flags: number;
  /** File-backed: the file (a reference is held) and the page offset of `start`. */
  readonly file?: KFile;
  readonly backing?: MmapBacking;
  readonly pgoff: number;
  /** Anonymous: written pages by page number (addr >> 12). */
  readonly anon?: AnonPages;
}

export interface MmapArgs {
  length: number | bigint;
  prot: number;
  flags: number;
  fd?: number;
  offset?: number | bigint;
  addr?: number | bigint;
}

/**
 * The x86-64 mmap base without randomisation (TASK_SIZE less mmap_base()'s 128 MiB minimum gap):
 * get_unmapped_area() hands out addresses top-down from here, as the kernel's default layout does,
 * so the whole 128 TiB user address space is usable and unmapped ranges are reused.
 */
const MMAP_BASE = 0x7fff_f7ff_f000;
const TASK_SIZE = 0x7fff_ffff_f000;
/** include/linux/fs.h: the largest file offset on 64-bit (file_mmap_size_max() for regular files). */
const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

/** vm.mmap_min_addr's usual value. */
const MMAP_MIN_ADDR = 0x1_0000;

/**
 * The advice madvise() knows; any other value is -EINVAL. Not modelled, so refused as unknown: the
 * 6.13+ MADV_GUARD_INSTALL / MADV_GUARD_REMOVE.
 */
const MADVICE = new Set([
  MADV_MERGEABLE,
  MADV_UNMERGEABLE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_DONTDUMP,
  MADV_DODUMP,
  MADV_WIPEONFORK,
  MADV_KEEPONFORK,
  MADV_COLD,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_DONTNEED_LOCKED,
  MADV_COLLAPSE,
  MADV_HWPOISON,
  MADV_SOFT_OFFLINE,
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_REMOVE,
  MADV_DONTFORK,
  MADV_DOFORK,
]);

const U64_MAX = (1n << 64n) - 1n;

/** Who is told when page tables of the address space are torn down (the host's MMU notifier list). */
export interface MmuNotifier {
  invalidateRange(start: number, end: number): void;
}

export class AddressSpace {
  private vmas: Vma[] = [];
  /**
   * mmu_notifier_invalidate_range_start() for [start, end): called whenever the page tables of a
   * range are torn down (munmap, MADV_DONTNEED, MADV_REMOVE), so that KVM can zap its SPTEs.
   */
  notifier: MmuNotifier | undefined;
  /** Who unmapped each range that is now a hole (munmap), for explanations of later faults. */
  private readonly unmapped = new ExtentMap<Provenance>();

  /**
   * mmap(2), checks in the kernel's order: x86 sys_mmap() (offset alignment), ksys_mmap_pgoff()
   * (fget of a non-anonymous mapping's fd: -EBADF; MAP_HUGETLB on a file that is not hugetlbfs:
   * -EINVAL), do_mmap() (length, the address from __get_unmapped_area(), MAP_FIXED_NOREPLACE, then
   * the file's size limit, the mapping type, noexec and a missing ->mmap), then mmap_region(): the
   * old mapping of a MAP_FIXED range goes before the file's ->mmap runs. prot is not validated.
   */
  mmap(args: MmapArgs, fileFor: (fd: number) => KFile): number {
    const flags = args.flags | 0;
    const prot = args.prot | 0;
    // Lengths and offsets as the kernel's unsigned longs: negative numbers wrap.
    const off = scalar(args.offset, 'mmap offset');
    if (off % BigInt(PAGE_SIZE) !== 0n) throw kerr('EINVAL', 'sys_mmap: offset not page aligned');
    let file: KFile | undefined;
    if (!(flags & MAP_ANONYMOUS)) {
      if (args.fd === undefined || args.fd < 0)
        throw kerr('EBADF', 'ksys_mmap_pgoff: no file for a non-anonymous mapping');
      file = fileFor(args.fd);
      if (flags & MAP_HUGETLB)
        throw kerr('EINVAL', 'ksys_mmap_pgoff: MAP_HUGETLB on a file that is not hugetlbfs');
    }
    const length = scalar(args.length, 'mmap length');
    if (length === 0n) throw kerr('EINVAL', 'do_mmap: len is 0');
    // PAGE_ALIGN(len) wrapping to 0 is -ENOMEM; so is anything past TASK_SIZE (get_unmapped_area).
    const aligned = (length + BigInt(PAGE_SIZE - 1)) & ~BigInt(PAGE_SIZE - 1);
    if (aligned >= 1n << 64n || aligned > BigInt(TASK_SIZE))
      throw kerr('ENOMEM', 'do_mmap: length beyond TASK_SIZE');
    const len = Number(aligned);
    // MAP_FIXED_NOREPLACE asks for exactly addr too (do_mmap() sets MAP_FIXED for it).
    const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0 && args.addr !== undefined;
    let start: number;
    if (fixed) {
      start = Number(args.addr);
      // __get_unmapped_area(): past TASK_SIZE -ENOMEM, then an unaligned address -EINVAL.
      if (start > TASK_SIZE - len)
        throw kerr('ENOMEM', 'get_unmapped_area: MAP_FIXED range beyond TASK_SIZE');
      if (start % PAGE_SIZE !== 0) throw kerr('EINVAL', 'do_mmap: MAP_FIXED address not aligned');
      if (flags & MAP_FIXED_NOREPLACE && this.overlaps(start, start + len))
        throw kerr('EEXIST', 'do_mmap: MAP_FIXED_NOREPLACE range is mapped');
    } else start = this.unmappedArea(len);
    const type = flags & MAP_TYPE;
    if (file) {
      // file_mmap_ok(): the mapping must end within MAX_LFS_FILESIZE.
      if (off + aligned > MAX_LFS_FILESIZE)
        throw kerr('EOVERFLOW', 'do_mmap: file offset + length too large');
      if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE)
        throw kerr('EINVAL', 'do_mmap: MAP_SHARED or MAP_PRIVATE required');
      // MAP_SHARED_VALIDATE refuses flags outside LEGACY_MAP_MASK (no model file has FOP_MMAP_SYNC),
      // then a noexec mount refuses PROT_EXEC, then a file with no ->mmap is -ENODEV.
      if (type === MAP_SHARED_VALIDATE && flags & ~LEGACY_MAP_MASK)
        throw kerr(
          'EOPNOTSUPP',
          `do_mmap: MAP_SHARED_VALIDATE with unknown flags 0x${(flags & ~LEGACY_MAP_MASK).toString(16)}`,
        );
      if (prot & PROT_EXEC && file.noexec) throw kerr('EPERM', `do_mmap: PROT_EXEC on a noexec ${file.kind}`);
      if (!file.hasMmap) throw kerr('ENODEV', `do_mmap: ${file.kind} has no mmap method`);
    } else if (type !== MAP_SHARED && type !== MAP_PRIVATE) {
      // An anonymous mapping is MAP_SHARED or MAP_PRIVATE (MAP_DROPPABLE, 6.11+, is not modelled).
      throw kerr('EINVAL', 'do_mmap: an anonymous mapping must be MAP_SHARED or MAP_PRIVATE');
    }
    if (fixed) this.munmap(start, len);
    if (file === undefined) {
      this.insert({ start, end: start + len, prot, flags, pgoff: 0, anon: new AnonPages() });
      return start;
    }
    const pgoff = Number(off / BigInt(PAGE_SIZE));
    const backing = file.mmap({ length: len, prot, flags, pgoff });
    this.insert({ start, end: start + len, prot, flags, pgoff, file: file.get(), backing });
    return start;
  }

  /** Whether any mapping overlaps [start, end). */
  private overlaps(start: number, end: number): boolean {
    return this.vmas.some((v) => v.start < end && v.end > start);
  }

  /**
   * vm_unmapped_area() top-down: the highest gap below MMAP_BASE that holds `len` bytes with a
   * one-page guard on each side that borders a mapping (the model keeps mappings apart, so an
   * access running off the end of one never lands in the next).
   */
  private unmappedArea(len: number): number {
    let hi = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= -1; i--) {
      const v = this.vmas[i];
      const lo = v === undefined ? MMAP_MIN_ADDR : v.end + PAGE_SIZE;
      if (lo < hi && hi - lo >= len + PAGE_SIZE) return hi - PAGE_SIZE - len;
      if (v !== undefined && v.start < hi) hi = v.start;
    }
    throw kerr('ENOMEM', 'get_unmapped_area: no gap large enough below mmap_base');
  }

  munmap(addr: number | bigint, length: number | bigint, since?: Provenance): void {
    // do_vmi_munmap(): an unaligned start, a start or length beyond TASK_SIZE, or a length that
    // rounds to nothing is -EINVAL (non-integers from a JS caller too).
    const startB = scalar(addr, 'munmap start');
    const lenB = scalar(length, 'munmap len');
    const task = BigInt(TASK_SIZE);
    if (startB % BigInt(PAGE_SIZE) !== 0n || startB > task || lenB > task - startB || lenB === 0n)
      throw kerr('EINVAL', 'do_vmi_munmap: bad range');
    const start = Number(startB);
    const len = Math.ceil(Number(lenB) / PAGE_SIZE) * PAGE_SIZE;
    const end = start + len;
    if (this.vmas.some((v) => v.start < end && v.end > start)) {
      this.notifier?.invalidateRange(start, end);
      if (since) this.unmapped.set(start / PAGE_SIZE, end / PAGE_SIZE, since);
    }
    const keep: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) {
        keep.push(v);
        continue;
      }
      if (v.start < start) keep.push(this.slice(v, v.start, start));
      if (v.end > end) keep.push(this.slice(v, end, v.end));
      v.file?.put();
    }
    this.vmas = keep.sort((a, b) => a.start - b.start);
  }

  /**
   * mprotect(2) (mm/mprotect.c do_mprotect_pkey()), checks in its order: PROT_GROWSDOWN with
   * PROT_GROWSUP (-EINVAL), an unaligned start (-EINVAL), length 0 (nothing), a range that wraps
   * (-ENOMEM), unknown prot bits (arch_validate_prot: -EINVAL), no VMA in the range or a hole at its
   * start (-ENOMEM). The model has no VM_GROWSDOWN/VM_GROWSUP mappings, so a GROWS flag that finds a
   * VMA is -EINVAL. Then each VMA of the range in order gets the new protection (split at the
   * range's ends); a hole after the first stops the walk with -ENOMEM, the VMAs before it changed.
   * A VMA whose protection changes has its page tables changed, which the MMU notifier reports
   * (change_protection(); the model does not keep page residency, so it reports the whole part).
   * PROT_EXEC on a mapping of a noexec file (no VM_MAYEXEC) is -EACCES, again after the VMAs before
   * it changed. Not modelled: -EACCES for PROT_WRITE on a shared mapping of a read-only open (the
   * model opens every file for writing) and overcommit accounting of newly writable private memory.
   */
  mprotect(addr: number | bigint, length: number | bigint, protIn: number): void {
    const grows = protIn & (PROT_GROWSDOWN | PROT_GROWSUP);
    const prot = protIn & ~(PROT_GROWSDOWN | PROT_GROWSUP);
    if (grows === (PROT_GROWSDOWN | PROT_GROWSUP))
      throw kerr('EINVAL', 'mprotect: PROT_GROWSDOWN and PROT_GROWSUP');
    const startB = scalar(addr, 'mprotect start');
    if (startB % BigInt(PAGE_SIZE) !== 0n) throw kerr('EINVAL', 'mprotect: start not page aligned');
    const lenIn = scalar(length, 'mprotect len');
    if (lenIn === 0n) return;
    const len = BigInt.asUintN(64, (lenIn + 0xfffn) & ~0xfffn);
    const endB = BigInt.asUintN(64, startB + len);
    if (endB <= startB) throw kerr('ENOMEM', 'mprotect: start + len wraps');
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM))
      throw kerr('EINVAL', `mprotect: unknown prot bits 0x${prot.toString(16)} (arch_validate_prot)`);
    const start = Number(startB);
    const end = endB > BigInt(TASK_SIZE) ? TASK_SIZE + PAGE_SIZE : Number(endB);
    const first = this.vmas.find((v) => v.end > start && v.start < end);
    if (first === undefined) throw kerr('ENOMEM', 'mprotect: no mapping in the range');
    if (grows & PROT_GROWSDOWN) {
      if (first.start >= end) throw kerr('ENOMEM', 'mprotect: no mapping in the range');
      throw kerr('EINVAL', 'mprotect: PROT_GROWSDOWN on a mapping that does not grow down');
    }
    if (first.start > start) throw kerr('ENOMEM', 'mprotect: the range starts in a hole');
    if (grows & PROT_GROWSUP)
      throw kerr('EINVAL', 'mprotect: PROT_GROWSUP on a mapping that does not grow up');
    const newProt = prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
    let tmp = first.start;
    const out: Vma[] = [];
    let stop: 'hole' | 'exec' | undefined;
    for (const v of this.vmas) {
      if (stop || v.end <= start || v.start >= end) {
        out.push(v);
        continue;
      }
      if (v.start !== tmp) {
        stop = 'hole';
        out.push(v);
        continue;
      }
      // VM_EXEC without VM_MAYEXEC: a file on a noexec mount or superblock (guest_memfd from 6.15).
      if (newProt & PROT_EXEC && v.file?.noexec) {
        stop = 'exec';
        out.push(v);
        continue;
      }
      const s = Math.max(start, v.start);
      const e = Math.min(end, v.end);
      tmp = e;
      // mprotect_fixup(): nothing to do when the flags stay the same.
      if ((v.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === newProt) {
        out.push(v);
        continue;
      }
      this.notifier?.invalidateRange(s, e);
      if (v.start < s) out.push(this.slice(v, v.start, s));
      out.push({ ...this.slice(v, s, e), prot: newProt });
      if (e < v.end) out.push(this.slice(v, e, v.end));
      v.file?.put();
    }
    this.vmas = out.sort((a, b) => a.start - b.start);
    if (stop === 'exec')
      throw kerr('EACCES', 'mprotect: PROT_EXEC on a mapping of a noexec file (no VM_MAYEXEC)');
    if (stop === 'hole' || tmp < end) throw kerr('ENOMEM', 'mprotect: part of the range is not mapped');
  }

  /**
   * madvise(2) (mm/madvise.c do_madvise()), checks in its order: the advice, start alignment, the
   * length (rounded up to pages; 0 does nothing). madvise_walk_vmas() then visits the VMAs of the
   * range in address order: a hole is -ENOMEM once the rest is done, a VMA's own error stops the
   * walk. Modelled advice:
   * - MADV_DONTNEED (madvise_dontneed_single_vma): the range's page tables go (the MMU notifier
   *   runs); private anonymous pages read as zero afterwards, a private file mapping's own copies
   *   are dropped, shared memory keeps its data (it lives in shmem / the file).
   * - MADV_REMOVE (madvise_remove): only a shared file mapping (shared anonymous memory is a shmem
   *   file), else -EINVAL (no file) or -EACCES; then vfs_fallocate(PUNCH_HOLE | KEEP_SIZE) of the
   *   file range, through `punch` for a real file.
   * - MADV_FREE: private anonymous memory only (-EINVAL otherwise); the page tables go (the MMU
   *   notifier runs) but the pages are freed only under memory pressure, which the model never has.
   * - MADV_DONTNEED_LOCKED: as DONTNEED. MADV_POPULATE_READ/WRITE: the faults (-EFAULT), and for
   *   POPULATE_WRITE on a private file mapping its private copies; they stop at the first hole.
   *   MADV_WIPEONFORK: private anonymous memory only. MADV_HWPOISON / SOFT_OFFLINE: -EPERM (the
   *   VMM is not CAP_SYS_ADMIN; memory failure is host.memoryFailure()).
   * - NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTFORK, DOFORK, KEEPONFORK, MERGEABLE, UNMERGEABLE,
   *   HUGEPAGE, NOHUGEPAGE, DONTDUMP, DODUMP, COLD, PAGEOUT (QEMU issues several on guest RAM):
   *   accepted, and they change no state the model keeps.
   * - MADV_COLLAPSE (madvise_collapse): -EINVAL where thp_vma_allowable_order() allows no PMD folio,
   *   as for a guest_memfd (no huge folios). On anonymous and shmem memory the outcome depends on
   *   page tables and THP settings the model does not keep: refused, -EINVAL, as not modelled.
   */
  madvise(
    addr: number | bigint,
    length: number | bigint,
    advice: number,
    punch: (file: KFile, offset: number, len: number) => void,
  ): void {
    if (!MADVICE.has(advice)) throw kerr('EINVAL', `madvise: advice ${advice} is not one the model knows`);
    const inject = advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE;
    // Plain page-aligned numbers below TASK_SIZE (what a VMM passes): no BigInt arithmetic.
    if (
      typeof addr === 'number' &&
      typeof length === 'number' &&
      pageAlignedNum(addr) &&
      pageAlignedNum(length) &&
      addr >= 0 &&
      length > 0 &&
      addr + length <= TASK_SIZE &&
      !inject
    ) {
      this.walkAdvice(addr, addr + length, advice, punch);
      return;
    }
    // Unsigned longs: a non-integer from a JS caller is -EINVAL, as no C caller can pass one.
    const startB = scalar(addr, 'madvise start');
    if (startB % BigInt(PAGE_SIZE) !== 0n) throw kerr('EINVAL', 'madvise: start not page aligned');
    const lenIn = scalar(length, 'madvise len');
    const len = BigInt.asUintN(64, (lenIn + 0xfffn) & ~0xfffn);
    if (lenIn !== 0n && len === 0n) throw kerr('EINVAL', 'madvise: PAGE_ALIGN(len) overflows');
    if (startB + len > U64_MAX) throw kerr('EINVAL', 'madvise: start + len wraps');
    if (len === 0n) return;
    // madvise_inject_error(), before any VMA is looked at: CAP_SYS_ADMIN, which the modelled VMM
    // does not have. (A kernel without CONFIG_MEMORY_FAILURE does not know these advices: -EINVAL.)
    if (inject) throw kerr('EPERM', 'madvise_inject_error: needs CAP_SYS_ADMIN');
    // find_vma() finds nothing at or above the top of the user address space.
    if (startB >= BigInt(TASK_SIZE)) throw kerr('ENOMEM', 'madvise: range not mapped');
    const start = Number(startB);
    const end = Math.min(TASK_SIZE, Number(startB + len));
    this.walkAdvice(start, end, advice, punch);
    if (BigInt(end) < startB + len) throw kerr('ENOMEM', 'madvise: part of the range is not mapped');
  }

  /** madvise_walk_vmas() over [start, end) (page aligned, below TASK_SIZE). */
  private walkAdvice(
    start: number,
    end: number,
    advice: number,
    punch: (file: KFile, offset: number, len: number) => void,
  ): void {
    let a = start;
    let hole = false;
    // madvise_populate() faults the range in address order and stops at the first hole (-ENOMEM:
    // __get_user_pages() with FOLL_MADV_POPULATE, vma_lookup() finds nothing), leaving what lies
    // beyond it alone; other advice visits every VMA (madvise_walk_vmas), then reports the hole.
    const populate = advice === MADV_POPULATE_READ || advice === MADV_POPULATE_WRITE;
    // No copy of the list: advice never maps or unmaps (munmap and mprotect replace the array).
    for (const v of this.vmas) {
      if (v.end <= a) continue;
      if (v.start >= end) break;
      if (v.start > a) {
        if (populate) break;
        hole = true;
      }
      const s = Math.max(a, v.start);
      const e = Math.min(end, v.end);
      this.adviseVma(v, s, e, advice, punch);
      a = e;
    }
    if (hole || a < end) throw kerr('ENOMEM', 'madvise: part of the range is not mapped');
  }

  private adviseVma(
    v: Vma,
    s: number,
    e: number,
    advice: number,
    punch: (file: KFile, offset: number, len: number) => void,
  ): void {
    const shared = (v.flags & MAP_TYPE) !== MAP_PRIVATE;
    const first = Math.floor(s / PAGE_SIZE);
    const last = e / PAGE_SIZE;
    // madvise_dontneed_free_valid_vma() and madvise_remove(): a locked mapping (MAP_LOCKED) keeps its
    // pages (MADV_DONTNEED_LOCKED excepted).
    if ((advice === MADV_DONTNEED || advice === MADV_FREE || advice === MADV_REMOVE) && v.flags & MAP_LOCKED)
      throw kerr('EINVAL', 'madvise: the mapping is locked (VM_LOCKED)');
    switch (advice) {
      case MADV_DONTNEED:
      case MADV_DONTNEED_LOCKED:
        this.notifier?.invalidateRange(s, e);
        if (v.anon && !shared) v.anon.drop(first, last);
        else if (v.backing && !shared)
          v.backing.dropPrivate?.(v.pgoff + (s - v.start) / PAGE_SIZE, v.pgoff + (e - v.start) / PAGE_SIZE);
        return;
      case MADV_REMOVE: {
        if (v.anon && !shared) throw kerr('EINVAL', 'madvise_remove: private anonymous memory has no file');
        // vma_is_shared_maywrite(): every shared mapping of the model's files may be made writable.
        if (!shared) throw kerr('EACCES', 'madvise_remove: not a shared mapping');
        if (v.anon) {
          this.notifier?.invalidateRange(s, e);
          v.anon.drop(first, last);
          return;
        }
        // The file's punch unmaps every mapping of the range (unmapMappingRange), this one included.
        punch(v.file!, s - v.start + v.pgoff * PAGE_SIZE, e - s);
        return;
      }
      case MADV_FREE:
        // vma_is_anonymous(): shared anonymous memory is a shmem file, not anonymous memory.
        if (!v.anon || shared) throw kerr('EINVAL', 'madvise_free_single_vma: not anonymous memory');
        this.notifier?.invalidateRange(s, e);
        return;
      case MADV_WIPEONFORK:
        if (!v.anon || shared)
          throw kerr('EINVAL', 'madvise_vma_behavior: WIPEONFORK on a file or shared mapping');
        return;
      case MADV_COLLAPSE:
        // madvise_collapse() asks thp_vma_allowable_order(TVA_FORCED_COLLAPSE, PMD_ORDER) first.
        if (v.backing && !v.backing.shmem)
          throw kerr(
            'EINVAL',
            'madvise_collapse: thp_vma_allowable_order(): no PMD-sized folios for this file',
          );
        throw kerr('EINVAL', 'madvise_collapse: collapsing anonymous or shmem memory is not modelled');
      case MADV_POPULATE_READ:
      case MADV_POPULATE_WRITE:
        this.populate(v, s, e, advice === MADV_POPULATE_WRITE);
        return;
      default:
        return;
    }
  }

  /**
   * madvise_populate() on one VMA: fault the range in (the model keeps no page residency, so only
   * the faults and what they leave matter: POPULATE_WRITE on a private file mapping makes its
   * private copies). A mapping that does not allow the access is -EINVAL ("permission problems",
   * check_vma_flags()); a SIGBUS or SIGSEGV fault is -EFAULT, a poisoned page -EHWPOISON.
   */
  private populate(v: Vma, s: number, e: number, write: boolean): void {
    // check_vma_flags() refuses a mapping without direct map (secretmem, out-of-tree NO_DIRECT_MAP
    // guest_memfd); for MADV_POPULATE every refusal there is -EINVAL.
    if (v.backing?.noDirectMap)
      throw kerr('EINVAL', 'madvise_populate: check_vma_flags(): the mapping has no direct map');
    if (!(v.prot & (write ? PROT_WRITE : PROT_READ)))
      throw kerr('EINVAL', `madvise_populate: the mapping does not allow ${write ? 'writes' : 'reads'}`);
    const b = v.backing;
    if (!b) return;
    const first = v.pgoff + (s - v.start) / PAGE_SIZE;
    const end = v.pgoff + (e - v.start) / PAGE_SIZE;
    try {
      if (b.populate) b.populate(first, end, write);
      else for (let p = first; p < end; p++) b.readPage(p);
    } catch (err) {
      // faultin_page_range() asks FOLL_HWPOISON: a poisoned page is -EHWPOISON, other faults -EFAULT.
      if (err instanceof HostFault)
        throw kerr(err.hwpoison ? 'EHWPOISON' : 'EFAULT', `madvise_populate: ${err.signal}: ${err.reason}`);
      throw err;
    }
  }

  /**
   * unmap_mapping_range(): the page tables of every mapping of `file` over the file's bytes
   * [start, end) go, with their MMU notifier calls (a shmem or guest_memfd hole punch, a shrinking
   * truncate). end may be Infinity (to the end of the file). `evenCows` (truncation) drops the
   * private copies of MAP_PRIVATE mappings too; a hole punch keeps them.
   */
  unmapMappingRange(file: KFile, start: number, end: number, evenCows = false): void {
    for (const v of this.vmas) {
      if (v.file !== file) continue;
      const fileStart = v.pgoff * PAGE_SIZE;
      const s = Math.max(start, fileStart);
      const e = Math.min(end, fileStart + (v.end - v.start));
      if (s >= e) continue;
      this.notifier?.invalidateRange(v.start + (s - fileStart), v.start + (e - fileStart));
      if (evenCows && (v.flags & MAP_TYPE) === MAP_PRIVATE)
        v.backing?.dropPrivate?.(s / PAGE_SIZE, e / PAGE_SIZE);
    }
  }

  /** A part of `v` that stays mapped: it holds its own reference on the file. */
  private slice(v: Vma, start: number, end: number): Vma {
    v.file?.get();
    return { ...v, start, end, pgoff: v.pgoff + (start - v.start) / PAGE_SIZE };
  }

  /** The munmap() that left `addr` unmapped, if the model saw one. */
  unmappedBy(addr: number): Provenance | undefined {
    return this.unmapped.get(Math.floor(addr / PAGE_SIZE));
  }

  private insert(v: Vma): void {
    this.unmapped.set(v.start / PAGE_SIZE, v.end / PAGE_SIZE, undefined);
    this.vmas.push(v);
    this.vmas.sort((a, b) => a.start - b.start);
  }

  find(addr: number): Vma | undefined {
    // Few VMAs: a linear scan is fine and keeps this simple.
    for (const v of this.vmas) if (addr >= v.start && addr < v.end) return v;
    return undefined;
  }

  read(addr: number | bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let a = Number(addr);
    let done = 0;
    while (done < len) {
      const page = Math.floor(a / PAGE_SIZE);
      const off = a - page * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const bytes = this.readPage(a);
      if (bytes) out.set(bytes.subarray(off, off + n), done);
      done += n;
      a += n;
    }
    return out;
  }

  write(addr: number | bigint, data: Uint8Array): void {
    let a = Number(addr);
    let done = 0;
    while (done < data.length) {
      const page = Math.floor(a / PAGE_SIZE);
      const off = a - page * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      this.writePage(a, off, data.subarray(done, done + n));
      done += n;
      a += n;
    }
  }

  /** The VMA an access at addr uses; `gup`: for get_user_pages(), which check_vma_flags() limits. */
  private vmaFor(addr: number, write: boolean, gup = false): Vma {
    const v = this.find(addr);
    if (!v) throw new HostFault('SIGSEGV', BigInt(addr), 'no mapping');
    // check_vma_flags() refuses a mapping without direct map (the out-of-tree AS_NO_DIRECT_MAP,
    // patch 0028 of the direct map removal series) before it looks at the protection.
    if (gup && v.backing?.noDirectMap)
      throw new HostFault('SIGSEGV', BigInt(addr), 'check_vma_flags(): the mapping has no direct map');
    if (write ? !(v.prot & PROT_WRITE) : !(v.prot & PROT_READ)) {
      throw new HostFault('SIGSEGV', BigInt(addr), 'protection');
    }
    return v;
  }

  /** Is [addr, addr+len) inside mappings (access_ok-style checks, e.g. the PSP's user blobs)? */
  mapped(addr: number, len: number): boolean {
    let a = addr;
    const end = addr + len;
    while (a < end) {
      const v = this.find(a);
      if (!v) return false;
      a = v.end;
    }
    return true;
  }

  /**
   * How many of the `max` pages from page-aligned `addr` lie in one readable anonymous mapping:
   * pages get_user_pages() reads without a fault path that could fail (populate's run path).
   */
  anonReadablePages(addr: number, max: number): number {
    const v = this.find(addr);
    if (!v?.anon || !(v.prot & PROT_READ)) return 0;
    return Math.min(max, Math.floor((v.end - addr) / PAGE_SIZE));
  }

  /**
   * The pages of an anonymous mapping from page-aligned `addr` on, with one VMA lookup for all of
   * them: page i's bytes (null = zeroes) for i below what anonReadablePages(addr, ...) allowed.
   * Valid until the mapping changes.
   */
  anonPagesFrom(addr: number): (i: number) => Uint8Array | null {
    const pages = this.find(addr)?.anon;
    const first = Math.floor(addr / PAGE_SIZE);
    return pages === undefined ? () => null : (i) => pages.get(first + i) ?? null;
  }

  /**
   * write() of whole pages whose bytes the caller hands over: the pages of `data` (page-aligned
   * `addr`, a multiple of 4 KiB) are stored without a copy (see pageWith()). The caller must not
   * change `data` afterwards. Same faults as write().
   */
  writeShared(addr: number, data: Uint8Array): void {
    if (addr % PAGE_SIZE !== 0 || data.length % PAGE_SIZE !== 0) {
      this.write(addr, data);
      return;
    }
    // Plain views even of a Buffer: Buffer's subarray() is library code, slow before V8 warms up.
    const plain = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    while (done < plain.length) {
      const a = addr + done;
      const v = this.vmaFor(a, true);
      const n = Math.min(plain.length - done, v.end - a);
      if (v.anon) {
        // Anonymous memory takes the whole part inside this mapping as one run.
        v.anon.share(a / PAGE_SIZE, plain.subarray(done, done + n));
      } else
        for (let o = 0; o < n; o += PAGE_SIZE)
          this.writePage(a + o, 0, plain.subarray(done + o, done + o + PAGE_SIZE));
      done += n;
    }
  }

  /** The page at `addr` for reading; null means all zeroes. */
  readPage(addr: number, gup = false): Uint8Array | null {
    const v = this.vmaFor(addr, false, gup);
    const page = Math.floor(addr / PAGE_SIZE);
    if (v.anon) return v.anon.get(page) ?? null;
    try {
      return v.backing!.readPage(v.pgoff + (page - v.start / PAGE_SIZE));
    } catch (e) {
      throw atAddress(e, addr);
    }
  }

  private writePage(addr: number, off: number, bytes: Uint8Array, gup = false): void {
    const v = this.vmaFor(addr, true, gup);
    const page = Math.floor(addr / PAGE_SIZE);
    if (v.anon) {
      v.anon.set(page, pageWith(v.anon.get(page), off, bytes));
      return;
    }
    try {
      v.backing!.writePage(v.pgoff + (page - v.start / PAGE_SIZE), off, bytes);
    } catch (e) {
      throw atAddress(e, addr + off);
    }
  }

  /**
   * get_user_pages() of one page for the kernel (populate's source, a shared guest access):
   * -EFAULT where no VMA maps it; the page's bytes (null = zero) otherwise. A file fault that
   * would SIGBUS a user access is -EFAULT for GUP.
   */
  gupRead(addr: number): Uint8Array | null {
    try {
      return this.readPage(addr, true);
    } catch (e) {
      if (e instanceof HostFault)
        throw kerr('EFAULT', `get_user_pages: ${e.reason} at 0x${addr.toString(16)}`);
      throw e;
    }
  }

  /**
   * The fault get_user_pages() takes on the page at `addr` for KVM's shared mapping (hva_to_pfn(),
   * FOLL_WRITE for a write fault): -EFAULT where a user access of that kind would fault: no VMA, no
   * direct map or the wrong protection (check_vma_flags()), a file page whose fault SIGBUSes.
   */
  gupFault(addr: number, write: boolean): void {
    try {
      const v = this.vmaFor(addr, write, true);
      if (!v.anon) v.backing!.readPage(v.pgoff + (Math.floor(addr / PAGE_SIZE) - v.start / PAGE_SIZE));
    } catch (e) {
      if (e instanceof HostFault)
        throw kerr('EFAULT', `get_user_pages: ${e.reason} at 0x${addr.toString(16)}`);
      throw e;
    }
  }

  /**
   * pin_user_pages_fast() of `npages` pages from page-aligned `addr`: whether every page could be
   * pinned (each faulted in as gupFault() does; FOLL_WRITE with `write`). Pinning keeps no state here.
   */
  pinUserPages(addr: number, npages: number, write: boolean): boolean {
    const end = addr + npages * PAGE_SIZE;
    let a = addr;
    try {
      while (a < end) {
        const v = this.vmaFor(a, write, true);
        const stop = Math.min(v.end, end);
        // Anonymous memory always faults in; a file page may not (past EOF: SIGBUS).
        if (!v.anon)
          for (let p = a; p < stop; p += PAGE_SIZE)
            v.backing!.readPage(v.pgoff + (p / PAGE_SIZE - v.start / PAGE_SIZE));
        a = stop;
      }
    } catch (e) {
      if (e instanceof HostFault) return false;
      throw e;
    }
    return true;
  }

  /** copy_from_user() of `len` bytes for the kernel: -EFAULT where any byte is not readable. */
  copyFromUser(addr: number, len: number): Uint8Array {
    try {
      return this.read(addr, len);
    } catch (e) {
      if (e instanceof HostFault)
        throw kerr('EFAULT', `copy_from_user: ${e.reason} at 0x${addr.toString(16)}`);
      throw e;
    }
  }

  /** copy_to_user() / put_user() of `bytes` for the kernel: -EFAULT where any byte is not writable. */
  copyToUser(addr: number, bytes: Uint8Array): void {
    try {
      this.write(addr, bytes);
    } catch (e) {
      if (e instanceof HostFault) throw kerr('EFAULT', `copy_to_user: ${e.reason} at 0x${addr.toString(16)}`);
      throw e;
    }
  }

  gupWrite(addr: number, off: number, bytes: Uint8Array): void {
    try {
      this.writePage(addr, off, bytes, true);
    } catch (e) {
      if (e instanceof HostFault)
        throw kerr('EFAULT', `get_user_pages: ${e.reason} at 0x${addr.toString(16)}`);
      throw e;
    }
  }
}

/** A file's fault handler knows only its page offset: the signal reports the user address. */
function atAddress(e: unknown, addr: number): unknown {
  return e instanceof HostFault ? new HostFault(e.signal, BigInt(addr), e.reason) : e;
}
