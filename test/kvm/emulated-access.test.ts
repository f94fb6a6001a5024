/**
 * Guest accesses by instructions KVM emulates (`emulated: true`): the emulator's
 * kvm_vcpu_read_guest() / kvm_vcpu_write_guest() copy through the memslot's userspace_addr, where
 * hardware accesses fault through the MMU (and, on a guest_memfd-only memslot, through
 * guest_memfd). Where the copy cannot be made the access is MMIO. Seen on a 6.18.44 PVM host, which
 * emulates every instruction of the conformance probe's guest (conformance/results).
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host, uapi } from '../../src/index.js';

const PAGE = 4096;
const RW = uapi.PROT_READ | uapi.PROT_WRITE;

function defaultVm(): { host: Host; vm: number; vcpu: number } {
  const host = createHost({ kernel: 'v6.18' });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
  return { host, vm, vcpu: host.ioctl(vm, 'KVM_CREATE_VCPU', 0) };
}

function anon(host: Host, pages: number, fill?: number): number {
  const a = host.mmap({ length: pages * PAGE, prot: RW, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  if (fill !== undefined) host.memory.write(a, new Uint8Array(pages * PAGE).fill(fill));
  return a;
}

function slot(host: Host, vm: number, id: number, gpa: number, uaddr: number, flags = 0): void {
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
    slot: id,
    flags,
    guest_phys_addr: gpa,
    memory_size: PAGE,
    userspace_addr: uaddr,
  });
}

describe('emulated guest accesses (kvm_vcpu_read_guest / kvm_vcpu_write_guest)', () => {
  it('reach the memslot userspace memory, in both directions, as a hardware access does on plain RAM', () => {
    const { host, vm, vcpu } = defaultVm();
    const ram = anon(host, 1);
    host.memory.write(ram + 8, [1, 2, 3, 4]);
    slot(host, vm, 0, 0x10000, ram);
    host
      .guest(vcpu)
      .load([
        { op: 'read', gpa: 0x10008, length: 4, emulated: true },
        { op: 'write', gpa: 0x10010, data: [9, 8, 7], emulated: true },
        { op: 'read', gpa: 0x10010, length: 3 },
        { op: 'hlt' },
      ]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
    expect(host.guest(vcpu).results[0]?.data).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect([...host.memory.read(ram + 0x10, 3)]).toEqual([9, 8, 7]);
    expect(host.guest(vcpu).results[2]?.data).toEqual(Uint8Array.of(9, 8, 7));
  });

  it('on a guest_memfd-only memslot (6.18) they go to userspace_addr while hardware accesses go to guest_memfd', () => {
    const { host, vm, vcpu } = defaultVm();
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', {
      size: PAGE,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP | uapi.GUEST_MEMFD_FLAG_INIT_SHARED,
    });
    const gmap = host.mmap({ length: PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: gmem });
    host.memory.write(gmap, [0x11, 0x22]);
    const other = anon(host, 1, 0xee);
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 1,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: 0x200000,
      memory_size: PAGE,
      userspace_addr: other,
      guest_memfd: gmem,
      guest_memfd_offset: 0,
    });
    host
      .guest(vcpu)
      .load([
        { op: 'read', gpa: 0x200000, length: 2, emulated: true },
        { op: 'read', gpa: 0x200000, length: 2 },
        { op: 'write', gpa: 0x200100, data: [5], emulated: true },
        { op: 'hlt' },
      ]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(host.guest(vcpu).results[0]?.data).toEqual(Uint8Array.of(0xee, 0xee));
    expect(host.guest(vcpu).results[1]?.data).toEqual(Uint8Array.of(0x11, 0x22));
    expect(host.memory.read(other + 0x100, 1)[0]).toBe(5);
    expect(host.memory.read(gmap + 0x100, 1)[0]).toBe(0);
  });

  it('are MMIO where the copy cannot be made: no memslot, a write to a read-only slot, an unmapped page', () => {
    const { host, vm, vcpu } = defaultVm();
    const ro = anon(host, 1, 0x5a);
    slot(host, vm, 0, 0x100000, ro, uapi.KVM_MEM_READONLY);
    const gone = anon(host, 1);
    slot(host, vm, 1, 0x300000, gone);
    host.munmap(gone, PAGE);
    host
      .guest(vcpu)
      .load([
        { op: 'read', gpa: 0x2000_0000, length: 4, emulated: true },
        { op: 'read', gpa: 0x100000, length: 2, emulated: true },
        { op: 'write', gpa: 0x100000, data: [1, 2], emulated: true },
        { op: 'read', gpa: 0x300000, length: 8, emulated: true },
        { op: 'hlt' },
      ]);
    const run = host.kvmRun(vcpu);
    const exits: string[] = [];
    for (;;) {
      host.ioctl(vcpu, 'KVM_RUN');
      if (run.exit_reason !== uapi.KVM_EXIT_MMIO) break;
      const m = run.mmio!;
      exits.push(`0x${m.phys_addr.toString(16)} ${m.len} ${m.is_write}`);
      if (!m.is_write) m.data.set([0xab, 0xcd, 0xef, 0x01]);
    }
    expect(exits).toEqual(['0x20000000 4 0', '0x100000 2 1', '0x300000 8 0']);
    const results = host.guest(vcpu).results;
    expect(results[0]?.data).toEqual(Uint8Array.of(0xab, 0xcd, 0xef, 0x01));
    expect(results[1]?.data).toEqual(Uint8Array.of(0x5a, 0x5a));
    expect(host.memory.read(ro, 2)).toEqual(Uint8Array.of(0x5a, 0x5a));
  });

  it('are refused at load on a VM with private memory or protected state, and must be booleans', () => {
    const host = createHost({ kernel: 'v6.18' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const load = (ops: unknown) => () => host.guest(vcpu).load(ops as never);
    expect(load([{ op: 'read', gpa: 0, length: 1, emulated: true }])).toThrow(/private memory/);
    expect(load([{ op: 'read', gpa: 0, length: 1, emulated: false }])).not.toThrow();
    const snp = createHost({ kernel: 'v6.18', platform: 'snp' });
    const snpVm = snp.ioctl(snp.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SNP_VM);
    const snpVcpu = snp.ioctl(snpVm, 'KVM_CREATE_VCPU', 0);
    expect(() => snp.guest(snpVcpu).load([{ op: 'write', gpa: 0, data: [1], emulated: true }])).toThrow(
      /protected state/,
    );
    const d = defaultVm();
    expect(() =>
      d.host.guest(d.vcpu).load([{ op: 'write', gpa: 0, data: [1], emulated: 1 } as never]),
    ).toThrow(/'emulated' must be a boolean/);
  });
});
