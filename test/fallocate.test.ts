/**
 * fallocate() on a guest_memfd: vfs_fallocate()'s mode checks per release, then kvm_gmem_allocate().
 * Expected values from the kernel source:
 * - fs/open.c vfs_fallocate() 6.8 .. 6.11: FALLOC_FL_SUPPORTED_MASK (include/linux/falloc.h:
 *   KEEP_SIZE | PUNCH_HOLE | COLLAPSE_RANGE | ZERO_RANGE | INSERT_RANGE | UNSHARE_RANGE) ->
 *   -EOPNOTSUPP; PUNCH_HOLE with ZERO_RANGE, or without KEEP_SIZE -> -EOPNOTSUPP; COLLAPSE_RANGE or
 *   INSERT_RANGE with any other bit, UNSHARE_RANGE with anything but KEEP_SIZE -> -EINVAL; all
 *   before the s_maxbytes -EFBIG check.
 * - 6.12+ ("fs: sort out the fallocate mode vs flag mess", vfs-6.12.fallocate): bits outside
 *   FALLOC_FL_MODE_MASK | KEEP_SIZE -> -EOPNOTSUPP, then a switch on the one mode: PUNCH_HOLE needs
 *   KEEP_SIZE, COLLAPSE/INSERT (and 6.17+ WRITE_ZEROES) refuse it, two modes -> -EOPNOTSUPP.
 * - virt/kvm/guest_memfd.c kvm_gmem_fallocate(): no KEEP_SIZE, or a mode other than PUNCH_HOLE ->
 *   -EOPNOTSUPP; kvm_gmem_allocate(): signal_pending() before each page -> -EINTR; 6.11-rc1's
 *   kvm_gmem_get_folio(prepare=true) stops the loop at the first failing arch hook.
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../src/index.js';
import { kerr } from '../src/kernel/errors.js';
import type { GmemFile } from '../src/kernel/kvm/guest-memfd.js';
import type { VmFile } from '../src/kernel/kvm/vm.js';
import { errnoOf } from './errno-of.js';

const PAGE = 4096;
const { FALLOC_FL_KEEP_SIZE: KEEP, FALLOC_FL_PUNCH_HOLE: PUNCH } = uapi;
const NO_HIDE_STALE = 0x04;
const COLLAPSE = 0x08;
const ZERO = 0x10;
const INSERT = 0x20;
const UNSHARE = 0x40;
const WRITE_ZEROES = 0x80;
const HUGE = 2n ** 63n - BigInt(PAGE); // offset + PAGE is beyond s_maxbytes (LLONG_MAX)

function gmem(kernel: string, pages = 4) {
  const host = createHost({ kernel });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const fd = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: pages * PAGE, flags: 0 });
  return { host, vm, fd };
}

// [mode, offset, errno before 6.12, errno 6.12 .. 6.16, errno 6.17+]
const cases: Array<[string, number, bigint, string, string, string]> = [
  [
    'NO_HIDE_STALE|KEEP_SIZE past s_maxbytes',
    NO_HIDE_STALE | KEEP,
    HUGE,
    'EOPNOTSUPP',
    'EOPNOTSUPP',
    'EOPNOTSUPP',
  ],
  ['PUNCH_HOLE|ZERO_RANGE|KEEP_SIZE', PUNCH | ZERO | KEEP, 0n, 'EOPNOTSUPP', 'EOPNOTSUPP', 'EOPNOTSUPP'],
  ['COLLAPSE_RANGE|KEEP_SIZE', COLLAPSE | KEEP, 0n, 'EINVAL', 'EOPNOTSUPP', 'EOPNOTSUPP'],
  ['INSERT_RANGE|KEEP_SIZE', INSERT | KEEP, 0n, 'EINVAL', 'EOPNOTSUPP', 'EOPNOTSUPP'],
  ['UNSHARE_RANGE|PUNCH_HOLE|KEEP_SIZE', UNSHARE | PUNCH | KEEP, 0n, 'EINVAL', 'EOPNOTSUPP', 'EOPNOTSUPP'],
  // A lone COLLAPSE_RANGE passes the VFS in every release; beyond s_maxbytes it is -EFBIG before
  // kvm_gmem_fallocate() sees it.
  ['COLLAPSE_RANGE past s_maxbytes', COLLAPSE, HUGE, 'EFBIG', 'EFBIG', 'EFBIG'],
  // WRITE_ZEROES: an unknown bit before 6.17; a mode of its own from 6.17, so past s_maxbytes the
  // VFS gives -EFBIG before kvm_gmem_fallocate() would refuse it.
  ['WRITE_ZEROES past s_maxbytes', WRITE_ZEROES, HUGE, 'EOPNOTSUPP', 'EOPNOTSUPP', 'EFBIG'],
  [
    'WRITE_ZEROES|KEEP_SIZE past s_maxbytes',
    WRITE_ZEROES | KEEP,
    HUGE,
    'EOPNOTSUPP',
    'EOPNOTSUPP',
    'EOPNOTSUPP',
  ],
];

describe('vfs_fallocate() mode checks per release', () => {
  for (const [kernel, col] of [
    ['v6.8', 3],
    ['v6.11', 3],
    ['tdx-dev-2024-07', 3],
    ['v6.16', 4],
    ['v6.18', 5],
    ['v7.0', 5],
  ] as const) {
    it.each(cases)(`[${kernel}] %s`, (...c) => {
      const { host, fd } = gmem(kernel);
      expect(errnoOf(() => host.fallocate(fd, c[1], c[2], PAGE))).toBe(c[col]);
    });
  }
});

describe('kvm_gmem_allocate()', () => {
  it.each(['v6.8', 'v6.11', 'v7.0'])('[%s] a pending signal -> EINTR, nothing allocated', (kernel) => {
    const { host, fd } = gmem(kernel);
    host.signalPending = true;
    expect(errnoOf(() => host.fallocate(fd, KEEP, 0, 4 * PAGE))).toBe('EINTR');
    host.signalPending = false;
    const inode = (host.fds.lookup(fd) as GmemFile).inode;
    expect(inode.folios.size).toBe(0);
  });

  it('[v6.11-rc1] a failing arch hook ends the loop: that page stays, later pages are never allocated', () => {
    const { host, vm, fd } = gmem('v6.11-rc1');
    const hva = host.mmap({
      length: 4 * PAGE,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    const base = 1 << 18;
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 1,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: base * PAGE,
      memory_size: 4 * PAGE,
      userspace_addr: hva,
      guest_memfd: fd,
      guest_memfd_offset: 0,
    });
    const arch = (host.fds.lookup(vm) as VmFile).vm.arch;
    const calls: number[] = [];
    arch.gmemPrepare = (gfn: number) => {
      calls.push(gfn - base);
      if (gfn - base === 1) throw kerr('ENOMEM', 'test hook fails on page 1');
    };
    expect(errnoOf(() => host.fallocate(fd, KEEP, 0, 4 * PAGE))).toBe('ENOMEM');
    expect(calls).toEqual([0, 1]);
    const inode = (host.fds.lookup(fd) as GmemFile).inode;
    expect([0, 1, 2, 3].map((i) => inode.folios.get(i) !== undefined)).toEqual([true, true, false, false]);
  });
});
