/**
 * guest.load(): a malformed guest program is refused when it is loaded (EINVAL, naming the
 * operation), never found as a crash inside KVM_RUN (DESIGN.md: nothing but SyscallError,
 * HostFault and InvariantViolation may escape the model).
 */
import { describe, expect, it } from 'vitest';
import { createHost, SyscallError, uapi } from '../../src/index.js';

function vcpuHost() {
  const host = createHost({ kernel: 'v7.0' });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  return { host, vcpu: host.ioctl(vm, 'KVM_CREATE_VCPU', 0) };
}

describe('guest.load() validation', () => {
  it.each([
    [[{ op: 'write', gpa: 0 }], /operation 0: write needs 'data'/],
    [[{ op: 'hlt' }, { op: 'nope' }], /operation 1: unknown op "nope"/],
    [[{ op: 'read' }], /read needs 'gpa'/],
    [[{ op: 'read', gpa: -5, length: 8 }], /read needs 'gpa'/],
    [[{ op: 'read', gpa: 0, length: 1.5 }], /read needs 'length'/],
    [[{ op: 'accept', gpa: 0 }], /accept needs 'gpa' and 'size'/],
    [[{ op: 'map_gpa', gpa: 0, npages: 1, via: 'vmcall' }], /'via' must be one of/],
    [[{ op: 'map_gpa', gpa: 0, npages: 1, attrs: 'x' }], /'attrs' must be/],
    [[{ op: 'map_gpa', gpa: 0, npages: 1, via: 'tdvmcall', size: -4096 }], /'size' must be/],
    [[null], /operation 0: not an object/],
    [[{ op: 'read', gpa: 2 ** 52 - 4, length: 8 }], /beyond 2\^52/],
    [[{ op: 'write', gpa: 2 ** 53 - 1, data: [1] }], /beyond 2\^52/],
    [[{ op: 'read', gpa: 2 ** 52 - 7, length: 8 }], /beyond 2\^52/],
    [[{ op: 'read', gpa: 2 ** 53 - 1, length: 2 ** 53 - 1 }], /beyond 2\^52/],
    [[{ op: 'terminate', reasonSet: 16 }], /terminate 'reasonSet' must be an integer 0..15/],
    [[{ op: 'terminate', reasonCode: -1 }], /terminate 'reasonCode' must be an integer 0..255/],
  ])('%j -> EINVAL %s', (ops, re) => {
    const { host, vcpu } = vcpuHost();
    let err: unknown;
    try {
      host.guest(vcpu).load(ops as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe('EINVAL');
    expect((err as SyscallError).message).toMatch(re);
  });

  it('an access ending exactly at 2^52 loads, as a number or a bigint gpa', () => {
    const { host, vcpu } = vcpuHost();
    const guest = host.guest(vcpu);
    guest.load([{ op: 'read', gpa: 2 ** 52 - 8, length: 8 }]);
    guest.load([{ op: 'write', gpa: 2n ** 52n - 1n, data: [1] }]);
    expect(guest.pc).toBe(0);
    expect(() => guest.load([{ op: 'read', gpa: 2n ** 52n - 7n, length: 8 }])).toThrow(/beyond 2\^52/);
  });

  it('a valid program loads and runs (2^64 - 4096 as a bigint gpa is accepted by load)', () => {
    const { host, vcpu } = vcpuHost();
    host.guest(vcpu).load([{ op: 'read', gpa: 2n ** 64n - 4096n, length: 0 }, { op: 'hlt' }]);
    expect(host.guest(vcpu).pc).toBe(0);
  });
});

describe('guest.results', () => {
  it('a read that exits (memory-fault) has no result until it completes', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    // A private gfn with no memslot: kvm_handle_noslot_fault() -> memory-fault exit, -EFAULT.
    const gpa = 0x10_0000;
    host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
      address: gpa,
      size: 4096,
      attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    const hva = host.mmap({ length: 8192, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.memory.write(hva, [7, 7, 7, 7]);
    // Some memslot must exist, or KVM_RUN stops with an internal error before any fault.
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 1,
      flags: 0,
      guest_phys_addr: 0x20_0000,
      memory_size: 4096,
      userspace_addr: hva + 4096,
    });
    const g = host.guest(vcpu);
    g.load([{ op: 'read', gpa, length: 4 }]);
    expect(() => host.ioctl(vcpu, 'KVM_RUN')).toThrow(SyscallError);
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_MEMORY_FAULT);
    expect(g.pc).toBe(0);
    expect(g.results[0]).toBeUndefined();
    // The VMM converts the page to shared and adds a memslot: the read runs again and completes.
    host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: gpa, size: 4096, attributes: 0, flags: 0 });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: 0,
      guest_phys_addr: gpa,
      memory_size: 4096,
      userspace_addr: hva,
    });
    host.ioctl(vcpu, 'KVM_RUN');
    expect([...g.results[0]!.data!]).toEqual([7, 7, 7, 7]);
  });
});

describe('guest.results: read bytes', () => {
  it("each read's bytes are its own: small reads share a buffer, not bytes; a big read has its own buffer", () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const hva = host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.memory.write(
      hva,
      Array.from({ length: 200 }, (_, i) => i),
    );
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 4096,
      userspace_addr: hva,
    });
    const g = host.guest(vcpu);
    // 2000 small reads cross several shared buffers; the last read is too big to share one.
    const small = Array.from({ length: 2000 }, (_, i) => ({ op: 'read' as const, gpa: i % 100, length: 8 }));
    g.load([...small, { op: 'read', gpa: 0, length: 200 }, { op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
    for (let i = 0; i < 2000; i++) {
      const want = Array.from({ length: 8 }, (_, k) => (i % 100) + k);
      expect([...g.results[i]!.data!]).toEqual(want);
    }
    // Writing one result's bytes leaves every other result as it was.
    g.results[0]!.data!.fill(0xff);
    expect([...g.results[1]!.data!]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const big = g.results[2000]!.data!;
    expect([big.length, big.byteOffset, big.buffer.byteLength, big[199]]).toEqual([200, 0, 200, 199]);
  });
});

/**
 * The ends a guest can come to besides HLT. 'shutdown' (a triple fault): KVM_EXIT_SHUTDOWN on every VM
 * type (SVM shutdown_interception(), VMX handle_triple_fault()). 'terminate' (the GHCB MSR protocol
 * termination request) exists only where there is a GHCB: SEV-ES and SNP guests
 * (sev_handle_vmgexit_msr_protocol() GHCB_MSR_TERM_REQ -> KVM_EXIT_SYSTEM_EVENT SEV_TERM, data[0] =
 * the MSR: reason set in [15:12], code in [23:16]).
 */
describe('guest ends: shutdown and terminate', () => {
  /**
   * A VM of `type` with a memslot (with none, KVM_RUN ends in an emulation failure before the guest
   * runs) and a vCPU; an SEV type gets KVM_SEV_INIT2 first.
   */
  function withSlot(type: number = uapi.KVM_X86_SW_PROTECTED_VM) {
    const sev = type === uapi.KVM_X86_SEV_ES_VM;
    const host = createHost(sev ? { kernel: 'v7.0', platform: 'snp' } : { kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', type);
    if (sev)
      host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
        id: 'KVM_SEV_INIT2',
        data: { vmsa_features: 0, flags: 0, ghcb_version: 0 },
      });
    const ram = host.mmap({ length: 0x10000, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION', {
      slot: 0,
      flags: 0,
      guest_phys_addr: 0,
      memory_size: 0x10000,
      userspace_addr: ram,
    });
    return { host, vcpu: host.ioctl(vm, 'KVM_CREATE_VCPU', 0) };
  }

  it('shutdown on a SW_PROTECTED VM: KVM_RUN returns 0 with KVM_EXIT_SHUTDOWN, and again if run again', () => {
    const { host, vcpu } = withSlot();
    host.guest(vcpu).load([{ op: 'shutdown' }, { op: 'hlt' }]);
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_SHUTDOWN);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(host.kvmRun(vcpu).exit_reason).toBe(uapi.KVM_EXIT_SHUTDOWN);
  });

  it('terminate is refused on a VM without a GHCB', () => {
    const { host, vcpu } = withSlot();
    host.guest(vcpu).load([{ op: 'terminate' }]);
    expect(() => host.ioctl(vcpu, 'KVM_RUN')).toThrow(/not available on sw_protected VMs/);
  });

  it('terminate on an SEV-ES guest: SEV_TERM with the reason set and code in the MSR value', () => {
    const { host, vcpu } = withSlot(uapi.KVM_X86_SEV_ES_VM);
    host.guest(vcpu).load([{ op: 'terminate', reasonSet: 1, reasonCode: 3 }]);
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    const run = host.kvmRun(vcpu);
    expect(run.exit_reason).toBe(uapi.KVM_EXIT_SYSTEM_EVENT);
    expect(run.system_event).toEqual({ type: uapi.KVM_SYSTEM_EVENT_SEV_TERM, ndata: 1, data: [0x31100n] });
  });
});
