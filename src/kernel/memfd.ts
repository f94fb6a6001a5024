/**
 * memfd_create() files: shmem (mm/shmem.c) as a VMM uses it for guest RAM it shares with other
 * processes. Contents are kept per page, with the same never-changed-in-place page arrays as
 * anonymous memory (page-bytes.ts pageWith()); read/write move the file position, pread/pwrite do not;
 * a MAP_SHARED mapping sees the file's pages, a MAP_PRIVATE one copies a page on its first write.
 * shmem_fault() beyond i_size is SIGBUS.
 */
import { MAP_PRIVATE, MAP_TYPE } from '../uapi/mman.js';
import { HostFault, kerr } from './errors.js';
import { KFile, type Loff, type MmapBacking, type MmapRequest, type Stat } from './file.js';
import type { Host } from './host.js';
import { PageBytes, pageWith } from './page-bytes.js';

const PAGE_SIZE = 4096;
/** A private copy of a hole: zeroes, shared by all such copies (stored pages are replaced, never changed). */
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;

export class MemFile extends KFile {
  override get regular(): boolean {
    return true;
  }

  readonly kind = 'memfd';
  /** i_size, set by ftruncate(), write() and fallocate(). */
  size = 0n;
  /** Page index -> bytes; absent pages read as zero. */
  private readonly pages = new PageBytes();
  /** f_pos for read() and write(). */
  private pos = 0;

  constructor(
    host: Host,
    private readonly ino: number,
  ) {
    super(host);
  }

  stat(): Stat {
    return { st_ino: this.ino, st_size: Number(this.size), st_blksize: PAGE_SIZE, st_mode: 0o100777 };
  }

  /** shmem_file_read_iter(): up to i_size; at or past it, 0 bytes. */
  override read(len: number, offset?: number): Uint8Array {
    const at = offset ?? this.pos;
    if (!Number.isSafeInteger(len) || len < 0 || !Number.isSafeInteger(at) || at < 0)
      throw kerr('EINVAL', 'shmem_file_read_iter: bad length or offset');
    const n = Math.max(0, Math.min(len, Number(this.size) - at));
    const out = new Uint8Array(n);
    for (let done = 0; done < n; ) {
      const a = at + done;
      const off = a % PAGE_SIZE;
      const k = Math.min(PAGE_SIZE - off, n - done);
      const page = this.pages.get((a - off) / PAGE_SIZE);
      if (page) out.set(page.subarray(off, off + k), done);
      done += k;
    }
    if (offset === undefined) this.pos += n;
    return out;
  }

  /** shmem_file_write_iter() via generic_perform_write(): the file grows to cover the write. */
  override write(data: Uint8Array, offset?: number): number {
    const at = offset ?? this.pos;
    if (!Number.isSafeInteger(at) || at < 0) throw kerr('EINVAL', 'shmem_file_write_iter: bad offset');
    for (let done = 0; done < data.length; ) {
      const a = at + done;
      const off = a % PAGE_SIZE;
      const k = Math.min(PAGE_SIZE - off, data.length - done);
      this.writePage((a - off) / PAGE_SIZE, off, data.subarray(done, done + k));
      done += k;
    }
    const end = BigInt(at + data.length);
    if (end > this.size) this.size = end;
    if (offset === undefined) this.pos += data.length;
    return data.length;
  }

  /** shmem_fallocate(): KEEP_SIZE and PUNCH_HOLE only; a punched range reads as zero again. */
  override fallocate(mode: number, off: Loff, length: Loff): void {
    const offset = BigInt(off);
    const len = BigInt(length);
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
      throw kerr('EOPNOTSUPP', 'shmem_fallocate: unsupported mode');
    if (mode & FALLOC_FL_PUNCH_HOLE) {
      // unmap_mapping_range() of the whole pages of the hole first: every mapping's page tables
      // (and KVM's SPTEs); partial pages at its ends stay mapped and are zeroed in place.
      const s = Math.ceil(Number(offset) / PAGE_SIZE) * PAGE_SIZE;
      const e = Math.floor(Number(offset + len) / PAGE_SIZE) * PAGE_SIZE;
      if (e > s) this.host.mm.unmapMappingRange(this, s, e);
      this.zero(Number(offset), Number(offset + len));
      return;
    }
    if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > this.size) this.size = offset + len;
  }

  /** shmem_setattr(): shrinking drops the pages beyond the new size (and zeroes the tail page). */
  truncate(size: bigint): void {
    if (size < this.size) {
      // shmem_setattr() > unmap_mapping_range(..., even_cows = 1): private copies go as well.
      this.host.mm.unmapMappingRange(this, Math.ceil(Number(size) / PAGE_SIZE) * PAGE_SIZE, Infinity, true);
      this.zero(Number(size), Number(this.size));
    }
    this.size = size;
  }

  override get hasMmap(): boolean {
    return true;
  }

  override mmap(req: MmapRequest): MmapBacking {
    const file = this;
    const fault = (pgoff: number): void => {
      // shmem_fault(): a page at or beyond i_size is VM_FAULT_SIGBUS.
      if (BigInt(pgoff) * BigInt(PAGE_SIZE) >= file.size)
        throw new HostFault('SIGBUS', BigInt(pgoff) << 12n, 'memfd fault beyond i_size');
    };
    // shmem_fault() of a run: every page below i_size comes in, the first one at or past it is SIGBUS.
    const populate = (first: number, end: number): void => {
      const limit = Math.ceil(Number(file.size) / PAGE_SIZE);
      if (end > limit) fault(Math.max(first, limit));
    };
    if ((req.flags & MAP_TYPE) !== MAP_PRIVATE) {
      return {
        shmem: true,
        populate,
        readPage(pgoff) {
          fault(pgoff);
          return file.pages.get(pgoff) ?? null;
        },
        writePage(pgoff, off, bytes) {
          fault(pgoff);
          file.writePage(pgoff, off, bytes);
        },
      };
    }
    // MAP_PRIVATE: the first write copies the page into the mapping (do_cow_fault()); a shrinking
    // ftruncate drops the copies beyond the new size (truncate()), a hole punch keeps them.
    const own = new Map<number, Uint8Array>();
    return {
      shmem: true,
      populate(first, end, write) {
        // Write faults (do_cow_fault) copy every page below i_size they reach; pages are never
        // changed in place, so the copy shares the file's bytes until either side is written.
        if (write) {
          const stop = Math.min(end, Math.ceil(Number(file.size) / PAGE_SIZE));
          for (let p = first; p < stop; p++) if (!own.has(p)) own.set(p, file.pages.get(p) ?? ZERO_PAGE);
        }
        populate(first, end);
      },
      readPage(pgoff) {
        const p = own.get(pgoff);
        if (p) return p;
        fault(pgoff);
        return file.pages.get(pgoff) ?? null;
      },
      writePage(pgoff, off, bytes) {
        const p = own.get(pgoff);
        if (!p) fault(pgoff);
        own.set(pgoff, pageWith(p ?? file.pages.get(pgoff), off, bytes));
      },
      dropPrivate(first, end) {
        for (const pgoff of [...own.keys()]) if (pgoff >= first && pgoff < end) own.delete(pgoff);
      },
    };
  }

  private writePage(index: number, off: number, bytes: Uint8Array): void {
    this.pages.set(index, pageWith(this.pages.get(index), off, bytes));
  }

  /** Bytes [start, end) read as zero again: whole pages dropped, partial ones rewritten. */
  private zero(start: number, end: number): void {
    if (start >= end) return;
    const head = Math.floor(start / PAGE_SIZE);
    const firstWhole = Math.ceil(start / PAGE_SIZE);
    const lastWhole = Math.floor(end / PAGE_SIZE);
    // A partial first page (which may also be the last).
    if (start % PAGE_SIZE !== 0 && this.pages.has(head)) {
      const stop = Math.min(PAGE_SIZE, end - head * PAGE_SIZE);
      this.writePage(head, start % PAGE_SIZE, new Uint8Array(stop - (start % PAGE_SIZE)));
    }
    if (firstWhole < lastWhole) this.pages.drop(firstWhole, lastWhole);
    // A partial last page of its own.
    if (end % PAGE_SIZE !== 0 && lastWhole >= firstWhole && this.pages.has(lastWhole))
      this.writePage(lastWhole, 0, new Uint8Array(end - lastWhole * PAGE_SIZE));
  }

  protected release(): void {
    this.pages.clear();
  }
}
