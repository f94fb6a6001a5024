/**
 * memfd_create() files (mm/shmem.c): read/write move f_pos, pread/pwrite do not; reads stop at
 * i_size; writes grow it; a MAP_SHARED mapping sees the file, a MAP_PRIVATE one copies a page on
 * write (do_cow_fault); a fault at or beyond i_size is SIGBUS (shmem_fault); PUNCH_HOLE and a
 * shrinking ftruncate read back as zero. A VMM's memfd-backed RAM reaches the guest through GUP.
 */
import { describe, expect, it } from 'vitest';
import { createHost, HostFault, uapi } from '../src/index.js';

const PAGE = 4096;
const bytes = (...b: number[]) => Uint8Array.from(b);

function memfd() {
  const host = createHost({ kernel: 'v7.0' });
  return { host, fd: host.memfdCreate('ram') };
}

describe('memfd read/write', () => {
  it('write grows i_size and moves f_pos; pread/pwrite leave f_pos alone; reads stop at i_size', () => {
    const { host, fd } = memfd();
    expect(host.write(fd, bytes(1, 2, 3))).toBe(3);
    expect(host.fstat(fd).st_size).toBe(3);
    expect(host.pwrite(fd, bytes(9), PAGE + 1)).toBe(1);
    expect(host.fstat(fd).st_size).toBe(PAGE + 2);
    expect([...host.pread(fd, 4, 0)]).toEqual([1, 2, 3, 0]);
    expect([...host.pread(fd, 8, PAGE)]).toEqual([0, 9]); // stops at i_size
    expect(host.pread(fd, 8, PAGE + 2).length).toBe(0);
    host.write(fd, bytes(4)); // f_pos is still 3
    expect([...host.pread(fd, 4, 0)]).toEqual([1, 2, 3, 4]);
  });

  it('PUNCH_HOLE and a shrinking ftruncate read back as zero', () => {
    const { host, fd } = memfd();
    host.pwrite(fd, new Uint8Array(3 * PAGE).fill(7), 0);
    host.fallocate(fd, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 100, PAGE);
    expect([...host.pread(fd, 2, 99)]).toEqual([7, 0]);
    expect([...host.pread(fd, 2, PAGE + 99)]).toEqual([0, 7]);
    host.ftruncate(fd, 2 * PAGE + 10);
    host.ftruncate(fd, 3 * PAGE);
    expect([...host.pread(fd, 2, 2 * PAGE + 9)]).toEqual([7, 0]);
  });
});

describe('memfd mappings', () => {
  it('MAP_SHARED sees and changes the file; MAP_PRIVATE copies on write; SIGBUS beyond i_size', () => {
    const { host, fd } = memfd();
    host.ftruncate(fd, 2 * PAGE);
    host.pwrite(fd, bytes(5, 6), 0);
    const shared = host.mmap({ length: 4 * PAGE, prot: 3, flags: uapi.MAP_SHARED, fd });
    const priv = host.mmap({ length: 2 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE, fd });
    expect([...host.memory.read(shared, 2)]).toEqual([5, 6]);
    host.memory.write(shared + PAGE, [8]);
    expect([...host.pread(fd, 1, PAGE)]).toEqual([8]);
    host.memory.write(priv, [1]);
    expect([...host.memory.read(priv, 2)]).toEqual([1, 6]);
    expect([...host.pread(fd, 2, 0)]).toEqual([5, 6]); // the file is unchanged
    expect(() => host.memory.read(shared + 2 * PAGE, 1)).toThrow(HostFault);
  });

  it('guest RAM backed by a shared memfd mapping: the guest reads what the VMM wrote to the file', () => {
    const { host, fd } = memfd();
    host.ftruncate(fd, 2 * PAGE);
    host.pwrite(fd, bytes(0xaa, 0xbb), PAGE);
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const hva = host.mmap({ length: 2 * PAGE, prot: 3, flags: uapi.MAP_SHARED, fd });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 2 * PAGE,
      userspace_addr: hva,
    });
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    host.guest(vcpu).load([{ op: 'read', gpa: PAGE, length: 2 }]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect([...host.guest(vcpu).results[0]!.data!]).toEqual([0xaa, 0xbb]);
  });
});

describe('memfd hole punch at scale (shmem_fallocate PUNCH_HOLE)', () => {
  it('an unaligned 1 PiB hole keeps the bytes outside it, zeroes those inside, and costs what was written', () => {
    const host = createHost({ kernel: 'v7.0' });
    const fd = host.memfdCreate('big');
    const PIB = 2 ** 50;
    host.ftruncate(fd, PIB);
    host.pwrite(fd, Uint8Array.of(1, 2, 3, 4), 0);
    host.pwrite(fd, Uint8Array.of(5, 6, 7, 8), PIB - 4);
    host.pwrite(fd, Uint8Array.of(9), 2 ** 40);
    host.fallocate(fd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, 2, PIB - 4);
    expect([...host.pread(fd, 4, 0)]).toEqual([1, 2, 0, 0]);
    expect([...host.pread(fd, 4, PIB - 4)]).toEqual([0, 0, 7, 8]);
    expect([...host.pread(fd, 1, 2 ** 40)]).toEqual([0]);
  });
});
