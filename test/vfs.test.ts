/**
 * The VFS entry points every file of the model goes through, checks in the kernel's order:
 * ksys_pread64()/ksys_pwrite64() (a negative pos, the fd, then FMODE_PREAD/FMODE_PWRITE, which
 * alloc_file_pseudo() files lack), do_sys_ftruncate()/do_ftruncate() (a negative length, the fd,
 * then a regular file) and vfs_fallocate() (non-regular files -> -ENODEV before -EFBIG and the
 * file's own method). fs/read_write.c, fs/open.c; the same results were seen on a 6.18 host for the
 * VM fd and a guest_memfd.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../src/index.js';
import type { GmemFile } from '../src/kernel/kvm/guest-memfd.js';
import { errnoOf } from './errno-of.js';

const PAGE = 4096;

function files() {
  const host = createHost({ kernel: 'v7.0' });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4 * PAGE, flags: 0 });
  const memfd = host.memfdCreate('ram');
  host.ftruncate(memfd, 4 * PAGE);
  return { host, kvm, vm, vcpu, gmem, memfd };
}

describe('pread / pwrite (ksys_pread64, ksys_pwrite64)', () => {
  it('anonymous-inode files (VM, vCPU, guest_memfd) have no FMODE_PREAD: ESPIPE', () => {
    const f = files();
    for (const fd of [f.vm, f.vcpu, f.gmem]) {
      expect(errnoOf(() => f.host.pread(fd, 8, 0))).toBe('ESPIPE');
      expect(errnoOf(() => f.host.pwrite(fd, new Uint8Array(8), 0))).toBe('ESPIPE');
    }
  });
  it('/dev/kvm, opened by open(), has FMODE_PREAD but no read method: EINVAL (vfs_read); a memfd reads', () => {
    const f = files();
    expect(errnoOf(() => f.host.pread(f.kvm, 8, 0))).toBe('EINVAL');
    expect(f.host.pwrite(f.memfd, Uint8Array.of(7), 0)).toBe(1);
    expect([...f.host.pread(f.memfd, 1, 0)]).toEqual([7]);
  });
  it('a negative position is EINVAL before the fd is looked up', () => {
    const f = files();
    expect(errnoOf(() => f.host.pread(999, 8, -1))).toBe('EINVAL');
    expect(errnoOf(() => f.host.pread(999, 8, 0))).toBe('EBADF');
  });
});

describe('ftruncate (do_sys_ftruncate, do_ftruncate)', () => {
  it('a negative length is EINVAL before the fd; non-regular files are EINVAL; guest_memfd refuses in setattr', () => {
    const f = files();
    expect(errnoOf(() => f.host.ftruncate(999, -1))).toBe('EINVAL');
    expect(errnoOf(() => f.host.ftruncate(999, 0))).toBe('EBADF');
    for (const fd of [f.kvm, f.vm, f.vcpu]) expect(errnoOf(() => f.host.ftruncate(fd, PAGE))).toBe('EINVAL');
    expect(errnoOf(() => f.host.ftruncate(f.gmem, PAGE))).toBe('EINVAL');
    expect(f.host.ftruncate(f.memfd, PAGE)).toBe(0);
    expect(f.host.fstat(f.memfd).st_size).toBe(PAGE);
  });
});

describe('fallocate (vfs_fallocate)', () => {
  it('/dev/kvm, the VM and the vCPU are not regular files: ENODEV, after the mode checks', () => {
    const f = files();
    for (const fd of [f.kvm, f.vm, f.vcpu]) {
      expect(errnoOf(() => f.host.fallocate(fd, 0, 0, PAGE))).toBe('ENODEV');
      // The mode is checked first: an unknown mode bit is EOPNOTSUPP even here.
      expect(errnoOf(() => f.host.fallocate(fd, 0x8000, 0, PAGE))).toBe('EOPNOTSUPP');
    }
    expect(f.host.fallocate(f.gmem, uapi.FALLOC_FL_KEEP_SIZE, 0, PAGE)).toBe(0);
  });

  it('loff_t arguments: numbers and bigints alike, at any size up to s_maxbytes (2^63 - 1)', () => {
    const f = files();
    const inode = (f.host.fds.lookup(f.gmem) as GmemFile).inode;
    const KEEP = uapi.FALLOC_FL_KEEP_SIZE;
    const PUNCH = KEEP | uapi.FALLOC_FL_PUNCH_HOLE;
    const held = () => [0, 1, 2, 3].map((i) => inode.folios.get(i) !== undefined);
    expect(f.host.fallocate(f.gmem, KEEP, 0n, BigInt(4 * PAGE))).toBe(0);
    expect(held()).toEqual([true, true, true, true]);
    f.host.fallocate(f.gmem, PUNCH, PAGE, PAGE); // numbers
    f.host.fallocate(f.gmem, PUNCH, 3n * 4096n, 4096n); // bigints
    expect(held()).toEqual([true, false, true, false]);
    // Beyond i_size, up to and across 2^53 and near s_maxbytes: nothing to punch, success.
    for (const [o, l] of [
      [2 ** 53 - PAGE, 2 * PAGE],
      [2 ** 53, PAGE],
      [2n ** 60n, 4096n],
      [2n ** 63n - 8192n, 4096n],
    ] as const)
      expect(f.host.fallocate(f.gmem, PUNCH, o, l)).toBe(0);
    expect(held()).toEqual([true, false, true, false]);
    expect(errnoOf(() => f.host.fallocate(f.gmem, PUNCH, 2n ** 63n - 4096n, 8192n))).toBe('EFBIG');
    expect(errnoOf(() => f.host.fallocate(f.gmem, PUNCH, -PAGE, PAGE))).toBe('EINVAL');
    expect(errnoOf(() => f.host.fallocate(f.gmem, PUNCH, 2n ** 60n + 1n, 4096n))).toBe('EINVAL');
    expect(errnoOf(() => f.host.fallocate(f.gmem, PUNCH, PAGE + 1, PAGE))).toBe('EINVAL');
    expect(errnoOf(() => f.host.fallocate(f.gmem, PUNCH, 0, PAGE / 2))).toBe('EINVAL');
    f.host.fallocate(f.gmem, PUNCH, 0, 4 * PAGE);
    expect(held()).toEqual([false, false, false, false]);
  });
});

describe('mmap of a file (do_mmap)', () => {
  const RW = uapi.PROT_READ | uapi.PROT_WRITE;
  const MAP_SYNC = 0x80000;
  it.each(['v6.18', 'v7.0'])(
    'guest_memfd on %s: PROT_EXEC is EPERM (noexec), with or without GUEST_MEMFD_FLAG_MMAP, before ->mmap',
    (kernel) => {
      const host = createHost({ kernel });
      const kvm = host.open('/dev/kvm');
      const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
      for (const flags of [0, uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED]) {
        const fd = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags });
        const m = { length: PAGE, prot: RW | uapi.PROT_EXEC, flags: uapi.MAP_SHARED, fd };
        expect(errnoOf(() => host.mmap(m))).toBe('EPERM');
      }
    },
  );
  // Before 6.18 guest_memfd has no ->mmap (-ENODEV); from 6.15 its anon_inodefs superblock is
  // SB_I_NOEXEC (1ed95281c0c7), and do_mmap() checks that first: PROT_EXEC is -EPERM.
  it.each([
    ['v6.11', 'ENODEV'],
    ['v6.16', 'EPERM'],
  ])('guest_memfd on %s has no ->mmap: ENODEV, and PROT_EXEC %s', (kernel, exec) => {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const fd = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags: 0 });
    expect(errnoOf(() => host.mmap({ length: PAGE, prot: RW, flags: uapi.MAP_SHARED, fd }))).toBe('ENODEV');
    const m = { length: PAGE, prot: RW | uapi.PROT_EXEC, flags: uapi.MAP_SHARED, fd };
    expect(errnoOf(() => host.mmap(m))).toBe(exec);
  });
  it('MAP_SHARED_VALIDATE: a flag outside LEGACY_MAP_MASK (MAP_SYNC) is EOPNOTSUPP; MAP_SHARED ignores it', () => {
    const f = files();
    const m = (flags: number) => ({ length: PAGE, prot: RW, flags, fd: f.memfd });
    expect(errnoOf(() => f.host.mmap(m(uapi.MAP_SHARED_VALIDATE | MAP_SYNC)))).toBe('EOPNOTSUPP');
    expect(f.host.mmap(m(uapi.MAP_SHARED_VALIDATE | uapi.MAP_POPULATE))).toBeGreaterThan(0);
    expect(f.host.mmap(m(uapi.MAP_SHARED | MAP_SYNC))).toBeGreaterThan(0);
  });
});

describe('kvm_gmem_bind offset + size (loff_t arithmetic)', () => {
  it('an offset just below 2^63 wraps the end negative and binds beyond the file (kernel behaviour, seen on 6.18); without the wrap, beyond the file is EINVAL', () => {
    const host = createHost({ kernel: 'v7.0' });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: PAGE, flags: 0 });
    const hva = host.mmap({
      length: 2 * PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    const region = (slot: number, gpa: number, offset: bigint) => ({
      slot,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: gpa,
      memory_size: 2 * PAGE,
      userspace_addr: hva,
      guest_memfd: gmem,
      guest_memfd_offset: offset,
    });
    expect(errnoOf(() => host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', region(0, 0, 0x1000n)))).toBe(
      'EINVAL',
    );
    expect(host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', region(1, 0x10000, 0x7ffffffffffff000n))).toBe(0);
  });
});
