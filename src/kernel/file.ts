/**
 * Files and the fd table of the modelled process (fs/file.c, fs/read_write.c, fs/open.c).
 * A file is reference counted: fds, dup()s and mmap()s hold references; the last put releases it.
 */
import { kerr } from './errors.js';
import type { Host } from './host.js';

export interface Stat {
  st_ino: number;
  st_size: number;
  st_blksize: number;
  st_mode: number;
}

/** The mmap request as the file's ->mmap sees it. */
export interface MmapRequest {
  readonly length: number;
  readonly prot: number;
  readonly flags: number;
  readonly pgoff: number;
}

/**
 * A loff_t that vfs_fallocate() has checked (offset >= 0, len > 0, offset + len <= s_maxbytes):
 * a Number when offset and len and their sum are safe integers (what a VMM passes: no BigInt per
 * call), else a bigint.
 */
export type Loff = number | bigint;

export abstract class KFile {
  private refs = 1;
  abstract readonly kind: string;

  constructor(readonly host: Host) {}

  get(): this {
    this.refs++;
    return this;
  }

  /** fput(): the last reference releases the file. */
  put(): void {
    if (--this.refs === 0) this.release();
  }

  get released(): boolean {
    return this.refs <= 0;
  }

  /**
   * FMODE_PREAD / FMODE_PWRITE: set by open() (do_dentry_open) and by memfd_create(); a file made by
   * alloc_file_pseudo() on an anonymous inode (VM, vCPU, guest_memfd) has neither, so pread/pwrite
   * are -ESPIPE (ksys_pread64).
   */
  get positional(): boolean {
    return true;
  }

  /**
   * S_ISREG(inode->i_mode): memfd (shmem) and guest_memfd (kvm_gmem_create sets S_IFREG); not the
   * character devices or the VM and vCPU anonymous inodes.
   */
  get regular(): boolean {
    return false;
  }

  /** path_noexec(): the file's mount or superblock forbids PROT_EXEC mappings (-EPERM in do_mmap). */
  get noexec(): boolean {
    return false;
  }

  /** ->unlocked_ioctl. No handler: -ENOTTY (vfs_ioctl). */
  ioctl(_request: number, _name: string, _arg: unknown): number {
    throw kerr('ENOTTY', `${this.kind}: no ioctl handler`);
  }

  /** vfs_read()/vfs_write(): a file with no read/write methods gives -EINVAL. */
  read(_len: number, _offset?: number): Uint8Array {
    throw kerr('EINVAL', `${this.kind}: no read method (vfs_read)`);
  }

  write(_data: Uint8Array, _offset?: number): number {
    throw kerr('EINVAL', `${this.kind}: no write method (vfs_write)`);
  }

  /** vfs_fallocate(): no ->fallocate gives -EOPNOTSUPP. */
  fallocate(_mode: number, _offset: Loff, _len: Loff): void {
    throw kerr('EOPNOTSUPP', `${this.kind}: no fallocate method (vfs_fallocate)`);
  }

  /** f_op->mmap exists: do_mmap() refuses a file without one (-ENODEV) before it unmaps anything. */
  get hasMmap(): boolean {
    return false;
  }

  /** The file's ->mmap. Returns the mapping's backing. */
  mmap(_req: MmapRequest): MmapBacking {
    throw kerr('ENODEV', `${this.kind}: no mmap method (do_mmap)`);
  }

  abstract stat(): Stat;

  protected abstract release(): void;
}

/** How a file-backed VMA resolves host accesses: one page at a time. */
export interface MmapBacking {
  /** Fault in page `pgoff` for reading or writing; returns the page's bytes view or null for a zero page. */
  readPage(pgoff: number): Uint8Array | null;
  writePage(pgoff: number, offsetInPage: number, bytes: Uint8Array): void;
  /** MAP_PRIVATE only: forget the mapping's own copies of pages [first, end) (MADV_DONTNEED). */
  dropPrivate?(first: number, end: number): void;
  /**
   * Fault pages [first, end) in (MADV_POPULATE_READ, or _WRITE with `write`), in one go: the state
   * the faults would leave (a write fault on a MAP_PRIVATE mapping copies the page into it), or the
   * HostFault of the first page that faults (pages before it done).
   */
  populate?(first: number, end: number, write?: boolean): void;
  /** shmem (memfd): a file whose folios may be huge, so MADV_COLLAPSE may act on it; other files have none. */
  readonly shmem?: boolean;
  /** AS_NO_DIRECT_MAP (out of tree, like secretmem): get_user_pages() refuses the mapping (-EFAULT). */
  readonly noDirectMap?: boolean;
}

/** The process's fd table: lowest free fd first, as the kernel allocates. */
export class FdTable {
  /** fd -> file; an array, not a Map: fds are small and every syscall looks one up. */
  private readonly files: (KFile | undefined)[] = [];
  private open = 0;
  /** The default soft RLIMIT_NOFILE of a login session. */
  static readonly RLIMIT_NOFILE = 1024;
  /** The default hard RLIMIT_NOFILE (systemd >= 240 sets 512Ki; fs.nr_open defaults to 1Mi). */
  static readonly RLIMIT_NOFILE_MAX = 524288;
  /** The soft limit get_unused_fd_flags() allocates below (rlimit(RLIMIT_NOFILE)). */
  private limit = FdTable.RLIMIT_NOFILE;
  /** Every fd below this one is open (the kernel's files_struct next_fd hint). */
  private nextFd = 3;

  /**
   * setrlimit(RLIMIT_NOFILE, { cur, max: RLIMIT_NOFILE_MAX }) by an unprivileged process, as QEMU's
   * os_setup_limits() raises its soft limit to the hard one. do_prlimit(): cur above max is -EINVAL.
   */
  setSoftLimit(cur: number): void {
    if (!Number.isInteger(cur) || cur < 0 || cur > FdTable.RLIMIT_NOFILE_MAX)
      throw kerr('EINVAL', 'do_prlimit: rlim_cur > rlim_max');
    this.limit = cur;
  }

  install(file: KFile): number {
    for (let fd = this.nextFd; fd < this.limit; fd++) {
      if (this.files[fd] === undefined) {
        this.files[fd] = file;
        this.open++;
        this.nextFd = fd + 1;
        return fd;
      }
    }
    file.put();
    throw kerr('EMFILE', 'get_unused_fd_flags: too many open files');
  }

  lookup(fd: unknown): KFile {
    if (typeof fd !== 'number' && typeof fd !== 'bigint') throw kerr('EBADF', 'fd is not a number');
    // Reading an index that is negative, fractional or huge finds nothing, as for a Map.
    const f = this.files[Number(fd)];
    if (!f) throw kerr('EBADF', `fd ${fd} is not open`);
    return f;
  }

  /** Is `fd` an open fd? */
  has(fd: unknown): boolean {
    return (typeof fd === 'number' || typeof fd === 'bigint') && this.files[Number(fd)] !== undefined;
  }

  /** fget() for kernel users (e.g. kvm_gmem_bind): a new reference, or undefined. */
  fget(fd: number): KFile | undefined {
    const f = this.files[fd];
    return f?.get();
  }

  close(fd: unknown): void {
    const f = this.lookup(fd);
    this.files[Number(fd)] = undefined;
    this.open--;
    if (Number(fd) < this.nextFd) this.nextFd = Number(fd);
    f.put();
  }

  dup(fd: unknown): number {
    return this.install(this.lookup(fd).get());
  }

  get size(): number {
    return this.open;
  }
}
