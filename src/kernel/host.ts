/**
 * The host: one process on one machine, with the syscall surface of DESIGN.md's public API.
 * Each syscall runs the modelled kernel, turns its KernelError into a SyscallError carrying the
 * errno, and then checks the safety invariants over what it touched.
 */
import { ERRNO } from '../uapi/errno.js';
import { KVM_IOCTLS } from '../uapi/kvm.js';
import {
  FALLOC_FL_COLLAPSE_RANGE as COLLAPSE,
  FALLOC_FL_INSERT_RANGE as INSERT,
  FALLOC_FL_KEEP_SIZE as KEEP_SIZE,
  MFD_ALL_FLAGS,
  MFD_EXEC,
  MFD_HUGETLB,
  MFD_NAME_MAX_LEN,
  MFD_NOEXEC_SEAL,
  FALLOC_FL_PUNCH_HOLE as PUNCH_HOLE,
  FALLOC_FL_UNSHARE_RANGE as UNSHARE,
  FALLOC_FL_WRITE_ZEROES as WRITE_ZEROES,
  FALLOC_FL_ZERO_RANGE as ZERO_RANGE,
} from '../uapi/mman.js';
import { HostFault, InvariantViolation, KernelError, kerr, SyscallError } from './errors.js';
import { FdTable, type KFile, type Loff, type Stat } from './file.js';
import { Guest } from './guest/program.js';
import { Invariants } from './invariants/index.js';
import { GmemFile, gmemMemoryFailure } from './kvm/guest-memfd.js';
import { KvmDevFile } from './kvm/kvm-dev.js';
import { emulationRefusal } from './kvm/run.js';
import type { KvmRun, Vcpu } from './kvm/vcpu.js';
import { VcpuFile } from './kvm/vcpu.js';
import { type Vm, VmFile } from './kvm/vm.js';
import { MemFile } from './memfd.js';
import { AddressSpace, type MmapArgs, type MmuNotifier } from './mm.js';
import { createPlatform, type Platform, type PlatformName } from './platform.js';
import { getProfile, kernels } from './profiles/index.js';
import type { KernelProfile } from './profiles/types.js';
import { Tracer } from './provenance.js';
import { RecentCache } from './recent-cache.js';
import { s64, scalar } from './uaccess.js';

export interface HostOptions {
  /** A profile name from kernels(), or a profile object (e.g. a deliberately broken one for tests). */
  kernel: string | KernelProfile;
  platform?: PlatformName;
  /** Check the safety invariants after every syscall (default true; benchmarks turn it off). */
  invariants?: boolean;
  /**
   * The host CPU gives KVM two-dimensional paging (EPT/NPT; default true). Without it (e.g. a nested
   * host without EPT) KVM_CAP_PRE_FAULT_MEMORY is 0 and KVM_PRE_FAULT_MEMORY is -EOPNOTSUPP
   * (kvm_tdp_map_page); SEV-SNP and TDX need it.
   */
  tdp?: boolean;
}

/** ioctl request names <-> numbers (uAPI); SEV / TDX commands are KVM_MEMORY_ENCRYPT_OP sub-commands. */
const ioctlNames = new Map<string, number>(Object.entries(KVM_IOCTLS));
const ioctlByCode = new Map<number, string>([...ioctlNames].map(([n, c]) => [c, n]));
/** ioctlNames for the few requests a VMM's loop repeats. */
const recentIoctlCodes = new RecentCache((name: string) => ioctlNames.get(name));

export class Host implements MmuNotifier {
  readonly profile: KernelProfile;
  readonly platform: Platform;
  readonly fds = new FdTable();
  readonly mm = new AddressSpace();
  readonly tracer = new Tracer();
  readonly invariants: Invariants;
  /** tdp_enabled: see HostOptions.tdp. */
  readonly tdp: boolean;
  /** Set by tests and flows to make the next interruptible kernel loop see a pending signal. */
  signalPending = false;
  private ino = 100;
  private vmId = 0;
  private pfnNext = 0x100000; // above the first 4 GiB of host memory
  private folioGen = 0;
  private readonly guests = new Map<Vcpu, Guest>();
  private lastGuestOf: Vcpu | undefined;
  private lastGuest: Guest | undefined;
  /** The VMs whose MMU notifier watches this mm (kvm_init_mmu_notifier() .. kvm_destroy_vm()). */
  readonly mmuNotifiers = new Set<Vm>();

  constructor(opts: HostOptions) {
    const profile = typeof opts.kernel === 'string' ? getProfile(opts.kernel) : opts.kernel;
    if (!profile)
      throw new TypeError(`unknown kernel '${String(opts.kernel)}'; known: ${kernels().join(', ')}`);
    this.profile = profile;
    const platform = opts.platform ?? 'generic';
    if (platform !== 'generic' && platform !== 'snp' && platform !== 'tdx') {
      throw new TypeError(`unknown platform '${String(platform)}'; known: generic, snp, tdx`);
    }
    this.invariants = new Invariants(opts.invariants ?? true);
    this.tdp = opts.tdp ?? true;
    if (!this.tdp && platform !== 'generic')
      throw new TypeError(`platform '${platform}' needs two-dimensional paging (tdp: true)`);
    this.platform = createPlatform(platform, this);
    // The host itself, not a closure over it: V8 (Node 20) keeps an object whose closure is stored
    // in another object alive through young-generation GCs, so every host would be promoted.
    this.mm.notifier = this;
  }

  /** mmu_notifier_invalidate_range_start() for every VM whose notifier watches this mm. */
  invalidateRange(start: number, end: number): void {
    for (const vm of this.mmuNotifiers) vm.mmuNotifierInvalidate(start, end);
  }

  // Deterministic allocators.
  nextIno(): number {
    return ++this.ino;
  }
  nextVmId(): number {
    return ++this.vmId;
  }
  nextFolioGen(): number {
    return ++this.folioGen;
  }
  /** A window of host pfns for a guest_memfd inode (never reused: pfns stay unique per page). */
  reservePfns(npages: number): number {
    const base = this.pfnNext;
    this.pfnNext += npages + 512; // a gap keeps inodes' windows apart
    return base;
  }

  /** The syscall number sequence so far (provenance `seq` values refer to it). */
  get seq(): number {
    return this.tracer.seq;
  }

  /** Run one syscall: errors become SyscallError, invariants are checked afterwards. */
  private sys<T>(syscall: string, request: string | undefined, fn: () => T): T {
    this.tracer.begin(request ?? syscall);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      throw this.syscallFailed(e, syscall, request);
    }
    this.invariants.check();
    return result;
  }

  /** What a failed syscall throws: its SyscallError, unless the invariants found worse. */
  private syscallFailed(e: unknown, syscall: string, request: string | undefined): unknown {
    const err =
      e instanceof KernelError ? new SyscallError(e.code, syscall, request, e.reason, e.explanation) : e;
    // A violation outranks the errno: it means the model reached an unsafe state (check() throws it).
    this.invariants.check();
    return err;
  }

  open(path: string, _flags = 2): number {
    return this.sys('open', undefined, () => {
      if (path === '/dev/kvm') return this.fds.install(new KvmDevFile(this));
      const f = this.platform.open?.(path);
      if (f) return this.fds.install(f);
      throw kerr('ENOENT', `open: ${path} does not exist on a ${this.platform.name} host`);
    });
  }

  ioctl(fd: number, request: string | number, arg?: unknown): number {
    const code = typeof request === 'number' ? request >>> 0 : recentIoctlCodes.get(request);
    const name =
      typeof request === 'string'
        ? request
        : (ioctlByCode.get(code ?? -1) ?? `0x${(code ?? 0).toString(16)}`);
    // sys() inlined: the hottest syscall (KVM_RUN, KVM_SET_MEMORY_ATTRIBUTES) allocates no closure.
    this.tracer.begin(name);
    let result: number;
    try {
      const file = this.fds.lookup(fd);
      if (code === undefined) throw kerr('ENOTTY', `unknown ioctl request '${name}'`);
      result = file.ioctl(code, name, arg);
    } catch (e) {
      throw this.syscallFailed(e, 'ioctl', name);
    }
    this.invariants.check();
    return result;
  }

  fallocate(fd: number, mode: number, offset: number | bigint, len: number | bigint): number {
    // sys() inlined, as in ioctl(): a VMM discards every converted page with one fallocate.
    this.tracer.begin('fallocate');
    try {
      const file = this.fds.lookup(fd);
      if (
        typeof offset === 'number' &&
        typeof len === 'number' &&
        Number.isSafeInteger(offset) &&
        Number.isSafeInteger(len) &&
        Number.isSafeInteger(offset + len)
      ) {
        // Plain numbers (what a VMM passes): the same checks without BigInt; offset + len is far
        // below s_maxbytes.
        if (offset < 0 || len <= 0) throw kerr('EINVAL', 'vfs_fallocate: offset < 0 or len <= 0');
        this.vfsFallocate(file, mode, offset, len);
      } else {
        // loff_t arguments: a non-integer from a JS caller is -EINVAL, as no C caller can pass one.
        const o = loffT(offset, 'fallocate offset');
        const l = loffT(len, 'fallocate len');
        if (o < 0n || l <= 0n) throw kerr('EINVAL', 'vfs_fallocate: offset < 0 or len <= 0');
        this.vfsFallocate(file, mode, o, l, o + l > S_MAXBYTES);
      }
    } catch (e) {
      throw this.syscallFailed(e, 'fallocate', undefined);
    }
    this.invariants.check();
    return 0;
  }

  /** vfs_fallocate() after the offset and len checks: mode, file type and size checks in its order, then the file's fallocate. */
  private vfsFallocate(file: KFile, mode: number, o: Loff, l: Loff, beyondMaxBytes = false): void {
    vfsFallocateMode(this.profile, mode);
    // Character devices and anonymous-inode files (VM, vCPU) are neither regular nor block devices.
    if (!file.regular) throw kerr('ENODEV', `vfs_fallocate: ${file.kind} is not a regular file`);
    if (beyondMaxBytes) throw kerr('EFBIG', 'vfs_fallocate: offset + len beyond s_maxbytes');
    file.fallocate(mode, o, l);
  }

  mmap(args: MmapArgs): number {
    return this.sys('mmap', undefined, () => this.mm.mmap(args, (fd) => this.fds.lookup(fd)));
  }

  /**
   * madvise(2): mm.ts AddressSpace.madvise(); MADV_REMOVE of a file mapping punches the file through
   * vfs_fallocate(), and torn-down page tables reach KVM through the MMU notifier.
   */
  madvise(addr: number | bigint, length: number | bigint, advice: number): number {
    // sys() inlined, as in fallocate(): a VMM discards every converted page with one madvise.
    this.tracer.begin('madvise');
    try {
      this.mm.madvise(addr, length, advice, this.madvisePunch);
    } catch (e) {
      throw this.syscallFailed(e, 'madvise', undefined);
    }
    this.invariants.check();
    return 0;
  }

  /** MADV_REMOVE of a shared file mapping: the file's punch through vfs_fallocate(). */
  private readonly madvisePunch = (file: KFile, offset: number, len: number): void =>
    this.vfsFallocate(file, PUNCH_HOLE | KEEP_SIZE, offset, len);

  /** mprotect(2): mm.ts AddressSpace.mprotect(); changed page tables reach KVM through the MMU notifier. */
  mprotect(addr: number | bigint, length: number | bigint, prot: number): number {
    return this.sys('mprotect', undefined, () => {
      this.mm.mprotect(addr, length, prot);
      return 0;
    });
  }

  munmap(addr: number | bigint, length: number | bigint): number {
    return this.sys('munmap', undefined, () => {
      this.mm.munmap(addr, length, this.tracer.here('do_vmi_munmap'));
      return 0;
    });
  }

  read(fd: number, len: number): Uint8Array {
    return this.sys('read', undefined, () => this.fds.lookup(fd).read(len));
  }

  write(fd: number, data: Uint8Array): number {
    return this.sys('write', undefined, () => this.fds.lookup(fd).write(data));
  }

  pread(fd: number, len: number, offset: number): Uint8Array {
    return this.sys('pread64', undefined, () =>
      this.positionalFile(fd, offset, 'ksys_pread64').read(len, offset),
    );
  }

  pwrite(fd: number, data: Uint8Array, offset: number): number {
    return this.sys('pwrite64', undefined, () =>
      this.positionalFile(fd, offset, 'ksys_pwrite64').write(data, offset),
    );
  }

  /** ksys_pread64()/ksys_pwrite64(): a negative position, then the fd, then FMODE_PREAD/PWRITE. */
  private positionalFile(fd: number, offset: number, fn: string): KFile {
    if (offset < 0) throw kerr('EINVAL', `${fn}: pos < 0`);
    const f = this.fds.lookup(fd);
    if (!f.positional)
      throw kerr('ESPIPE', `${fn}: the file has no FMODE_PREAD/FMODE_PWRITE (anonymous inode)`);
    return f;
  }

  fstat(fd: number): Stat {
    return this.sys('fstat', undefined, () => this.fds.lookup(fd).stat());
  }

  /**
   * ftruncate(): do_sys_ftruncate() (a negative length, then the fd), do_ftruncate() (a regular
   * file opened for writing), then the file's setattr: guest_memfd has a fixed size
   * (kvm_gmem_setattr -> -EINVAL).
   */
  ftruncate(fd: number, length: number | bigint): number {
    return this.sys('ftruncate', undefined, () => {
      const len = s64({ length }, 'length');
      if (len < 0n) throw kerr('EINVAL', 'do_sys_ftruncate: length < 0');
      const f = this.fds.lookup(fd);
      if (!f.regular) throw kerr('EINVAL', `do_ftruncate: ${f.kind} is not a regular file`);
      if (f instanceof GmemFile) throw kerr('EINVAL', 'kvm_gmem_setattr: guest_memfd size is fixed');
      if (f instanceof MemFile) f.truncate(len);
      return 0;
    });
  }

  close(fd: number): number {
    return this.sys('close', undefined, () => {
      this.fds.close(fd);
      return 0;
    });
  }

  dup(fd: number): number {
    return this.sys('dup', undefined, () => this.fds.dup(fd));
  }

  /**
   * memfd_create(2), mm/memfd.c: sanitize_flags() (unknown flags, EXEC with NOEXEC_SEAL), then the
   * name's length. Sealing and the exec bits have no effect in the model; MFD_HUGETLB files are
   * hugetlbfs, which the model does not have (-EINVAL, "not modelled").
   */
  memfdCreate(name: string, flags = 0): number {
    return this.sys('memfd_create', undefined, () => {
      if (flags & ~MFD_ALL_FLAGS) throw kerr('EINVAL', 'memfd_create: unknown flags');
      if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL)
        throw kerr('EINVAL', 'memfd_create: MFD_EXEC with MFD_NOEXEC_SEAL');
      if (Buffer.byteLength(name) > MFD_NAME_MAX_LEN)
        throw kerr('EINVAL', `memfd_create: name longer than ${MFD_NAME_MAX_LEN} bytes`);
      if (flags & MFD_HUGETLB) throw kerr('EINVAL', 'memfd_create: MFD_HUGETLB (hugetlbfs) is not modelled');
      return this.fds.install(new MemFile(this, this.nextIno()));
    });
  }

  /**
   * madvise(MADV_HWPOISON) on a guest_memfd mapping, or memory_failure() injected by offset on a
   * guest_memfd fd: the page is poisoned (guest_memfd_test's memory-failure case).
   */
  memoryFailure(fd: number, offset: number | bigint): number {
    return this.sys('memory_failure', undefined, () => {
      const f = this.fds.lookup(fd);
      if (!(f instanceof GmemFile)) throw kerr('EINVAL', 'memory_failure: not a guest_memfd');
      gmemMemoryFailure(f, Number(scalar(offset, 'memory_failure offset') >> 12n));
      return 0;
    });
  }

  /** The host process's memory (SIGSEGV / SIGBUS as HostFault). */
  readonly memory = {
    read: (addr: number | bigint, len: number): Uint8Array => this.hostAccess(() => this.mm.read(addr, len)),
    write: (addr: number | bigint, bytes: Uint8Array | number[]): void =>
      // mm.write copies into the pages: a Uint8Array needs no copy of its own first.
      this.hostAccess(() =>
        this.mm.write(addr, bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes)),
      ),
    /**
     * write() of whole pages without copying them: the pages keep referring to `bytes`,
     * copy-on-write, so the caller must not change `bytes` afterwards (e.g. a firmware image).
     */
    writeShared: (addr: number, bytes: Uint8Array): void =>
      this.hostAccess(() => this.mm.writeShared(addr, bytes)),
  };

  private hostAccess<T>(fn: () => T): T {
    this.tracer.begin('host memory access');
    let r: T;
    try {
      r = fn();
    } catch (e) {
      // A fault part-way (SIGBUS, EFAULT) still checks what the access did before it: a violation
      // belongs to this access, not to the next call.
      this.invariants.check();
      throw e;
    }
    this.invariants.check();
    return r;
  }

  /** The vCPU behind a vCPU fd. */
  vcpuOf(fd: number): Vcpu {
    // Not a syscall: a bad fd is reported as a SyscallError here, never as a bare KernelError.
    const f = this.fds.has(fd) ? this.fds.lookup(fd) : undefined;
    if (!(f instanceof VcpuFile))
      throw new SyscallError('EBADF', 'guest', undefined, `fd ${fd} is not a vCPU`);
    return f.vcpu;
  }

  /** host.guest(vcpuFd): the guest program of a vCPU. */
  guest(vcpu: number | Vcpu): Guest {
    const v = typeof vcpu === 'number' ? this.vcpuOf(vcpu) : vcpu;
    // Every KVM_RUN asks; mostly for the vCPU asked last.
    if (v === this.lastGuestOf) return this.lastGuest!;
    let g = this.guests.get(v);
    if (!g) {
      const vm = v.vm;
      g = new Guest(() => emulationRefusal(vm));
      this.guests.set(v, g);
    }
    this.lastGuestOf = v;
    this.lastGuest = g;
    return g;
  }

  /**
   * Race hook: a KVM_SET_USER_MEMORY_REGION(2) deleting or moving memslot `slot` (address space
   * 0) of the VM behind `vmFd` is in flight on another thread: KVM_MEMSLOT_INVALID is published,
   * synchronize_srcu() has not returned. Until the next memslot change on that VM (the caller's
   * ioctl that "completes" it), KVM_PRE_FAULT_MEMORY sees the invalid slot. A deterministic
   * stand-in for pre_fault_memory_test's delete_slot_worker thread.
   */
  raceMemslotUpdate(vmFd: number, slot: number): void {
    const f = this.fds.lookup(vmFd);
    if (!(f instanceof VmFile)) throw new SyscallError('EBADF', 'race', undefined, `fd ${vmFd} is not a VM`);
    const s = f.vm.memslots.space(0).byId.get(slot);
    if (!s) throw new SyscallError('EINVAL', 'race', undefined, `VM has no memslot ${slot}`);
    f.vm.mmu.beginRacingMemslotUpdate(s);
  }

  /** The mmap'ed struct kvm_run of a vCPU. */
  kvmRun(vcpu: number): KvmRun {
    return this.vcpuOf(vcpu).run;
  }
}

export function createHost(opts: HostOptions): Host {
  return new Host(opts);
}

/** errno number for a name, for callers that compare numbers. */
export function errno(name: keyof typeof ERRNO): number {
  return ERRNO[name];
}

export { HostFault, InvariantViolation, SyscallError };

/** MAX_LFS_FILESIZE, the s_maxbytes of the files that have fallocate here. */
const S_MAXBYTES = (1n << 63n) - 1n;

/**
 * A loff_t argument: `v` as a signed 64-bit value. A non-negative safe integer (the common case)
 * converts directly, without the scalar() and asIntN round trip.
 */
function loffT(v: number | bigint, what: string): bigint {
  if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) return BigInt(v);
  return BigInt.asIntN(64, scalar(v, what));
}

/** vfs_fallocate()'s mode checks, in its order, per release (profile.vfs). */
function vfsFallocateMode(profile: KernelProfile, mode: number): void {
  const v = profile.vfs;
  if (!v.fallocateModeSwitch) {
    // 6.8 .. 6.11: FALLOC_FL_SUPPORTED_MASK, then the combinations one by one.
    if (mode & ~(KEEP_SIZE | PUNCH_HOLE | COLLAPSE | ZERO_RANGE | INSERT | UNSHARE))
      throw kerr('EOPNOTSUPP', 'vfs_fallocate: mode bits outside FALLOC_FL_SUPPORTED_MASK');
    if ((mode & (PUNCH_HOLE | ZERO_RANGE)) === (PUNCH_HOLE | ZERO_RANGE))
      throw kerr('EOPNOTSUPP', 'vfs_fallocate: PUNCH_HOLE and ZERO_RANGE are exclusive');
    if (mode & PUNCH_HOLE && !(mode & KEEP_SIZE))
      throw kerr('EOPNOTSUPP', 'vfs_fallocate: PUNCH_HOLE requires KEEP_SIZE');
    if (mode & COLLAPSE && mode & ~COLLAPSE)
      throw kerr('EINVAL', 'vfs_fallocate: COLLAPSE_RANGE must be used alone');
    if (mode & INSERT && mode & ~INSERT)
      throw kerr('EINVAL', 'vfs_fallocate: INSERT_RANGE must be used alone');
    if (mode & UNSHARE && mode & ~(UNSHARE | KEEP_SIZE))
      throw kerr('EINVAL', 'vfs_fallocate: UNSHARE_RANGE only with KEEP_SIZE');
    return;
  }
  // 6.12+: exactly one mode of FALLOC_FL_MODE_MASK (none = allocate), KEEP_SIZE where it applies.
  const modes =
    PUNCH_HOLE | COLLAPSE | ZERO_RANGE | INSERT | UNSHARE | (v.fallocateWriteZeroes ? WRITE_ZEROES : 0);
  if (mode & ~(modes | KEEP_SIZE))
    throw kerr('EOPNOTSUPP', 'vfs_fallocate: mode bits outside FALLOC_FL_MODE_MASK');
  switch (mode & modes) {
    case 0:
    case UNSHARE:
    case ZERO_RANGE:
      return;
    case PUNCH_HOLE:
      if (!(mode & KEEP_SIZE)) throw kerr('EOPNOTSUPP', 'vfs_fallocate: PUNCH_HOLE requires KEEP_SIZE');
      return;
    case COLLAPSE:
    case INSERT:
    case WRITE_ZEROES:
      if (mode & KEEP_SIZE) throw kerr('EOPNOTSUPP', 'vfs_fallocate: this mode does not take KEEP_SIZE');
      return;
    default:
      throw kerr('EOPNOTSUPP', 'vfs_fallocate: more than one mode');
  }
}
