/**
 * Guest read-back expectations (`expect` on a guest program's read op): the loader compiles them, the
 * run step that completes the read compares the bytes, and a difference makes that step unexpected
 * with the offset and both byte strings. The guest here is a SW_PROTECTED VM as in
 * private_mem_conversions_test.c: a private write, then a shared read of the same gfn after the
 * attribute change reads the shared backing (the host mapping), not the private page.
 */
import { describe, expect, it } from 'vitest';
import '../../src/kernel/arch/register.js';
import { FlowLoadError, formatProblem, parseFlow } from '../../src/flow/loader.js';
import { runFlow } from '../../src/flow/runner.js';

const flow = (want: string, extra = ''): string => `
name: read-back
title: read-back
platform: generic
source: { vmm: test, version: "0", file: read-back.test.ts }
outcomes: { others: ok }
steps:
  - open: /dev/kvm
    as: kvm
  - ioctl: KVM_CREATE_VM
    fd: $kvm
    arg: KVM_X86_SW_PROTECTED_VM
    as: vm
  - mmap: { length: 0x10000, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS }
    as: ram
  - write: { addr: $ram, data: { fill: 0x77, length: 0x1000 } }
  - ioctl: KVM_CREATE_GUEST_MEMFD
    fd: $vm
    arg: { size: 0x10000, flags: 0 }
    as: gmem
  - ioctl: KVM_SET_USER_MEMORY_REGION2
    fd: $vm
    arg: { slot: 0, flags: KVM_MEM_GUEST_MEMFD, guest_phys_addr: 0, memory_size: 0x10000, userspace_addr: $ram, guest_memfd: $gmem, guest_memfd_offset: 0 }
  - ioctl: KVM_SET_MEMORY_ATTRIBUTES
    fd: $vm
    arg: { address: 0, size: 0x10000, attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 }
  - ioctl: KVM_CREATE_VCPU
    fd: $vm
    arg: 0
    as: vcpu
  - ioctl: KVM_ENABLE_CAP
    fd: $vm
    arg: { cap: KVM_CAP_EXIT_HYPERCALL, flags: 0, args: ["1 << KVM_HC_MAP_GPA_RANGE"] }
  - guest: $vcpu
    program:
      - { op: write, gpa: 0, data: { fill: 0x5a, length: 16 } }
      - { op: read, gpa: 0, length: 16, expect: { fill: 0x5a, length: 16 } }
      - { op: map_gpa, gpa: 0, npages: 1, private: false }
      - { op: read, gpa: 0, length: 16, expect: ${want} }
      - { op: hlt }
  - name: first
    run: $vcpu
    expect: { exit: KVM_EXIT_HYPERCALL }
  - ioctl: KVM_SET_MEMORY_ATTRIBUTES
    fd: $vm
    arg: { address: 0, size: 0x1000, attributes: 0, flags: 0 }
  - name: second
    run: $vcpu
    expect: { exit: KVM_EXIT_HLT }
${extra}`;

describe('guest read-back expectations (flow schema: GuestOp read.expect)', () => {
  it('private_mem_conversions_test.c guest_test_explicit_conversion: after to-shared the gfn reads the shared backing', () => {
    const r = runFlow(parseFlow(flow('{ fill: 0x77, length: 16 }'), 'read-back.yaml'), { kernel: 'v6.16' });
    expect(r.passed).toBe(true);
    expect(r.steps.find((s) => s.name === 'first')?.asExpected).toBe(true);
    expect(r.steps.find((s) => s.name === 'second')?.asExpected).toBe(true);
  });

  it('a different byte makes the run step that completed the read unexpected, with offset and bytes', () => {
    const r = runFlow(parseFlow(flow('{ hex: "77 77 77 00" }'), 'read-back.yaml'), { kernel: 'v6.16' });
    expect(r.passed).toBe(false);
    expect(r.firstUnexpected?.name).toBe('second');
    expect(r.firstUnexpected?.outcome.kind).toBe('ok');
    expect(r.firstUnexpected?.explanation).toContain(
      'guest op 3 (read of 16 bytes at gpa 0x0) returned [77 77 77 77 77 77 77 77 ...] at offset 3, expected [00]',
    );
  });

  it('a read still pending when the run exits is checked by the run that completes it', () => {
    // The read after map_gpa is only completed by 'second': 'first' must not report it.
    const r = runFlow(parseFlow(flow('{ fill: 0x11, length: 16 }'), 'read-back.yaml'), { kernel: 'v6.16' });
    expect(r.steps.find((s) => s.name === 'first')?.asExpected).toBe(true);
    expect(r.firstUnexpected?.name).toBe('second');
  });

  it('the loader rejects a malformed expectation with file:line:column', () => {
    let err: unknown;
    try {
      parseFlow(flow('{ fill: 0x5a }'), 'read-back.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FlowLoadError);
    const lines = (err as FlowLoadError).problems.map(formatProblem);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^read-back\.yaml:\d+:\d+: /);
  });
});

describe('host read steps (flow schema: ReadStep)', () => {
  it('the VMM reads its shared mapping after the guest wrote through the shared view: the bytes are there', () => {
    const extra = `  - name: vmm-read
    read: { addr: $ram, length: 4, expect: [0x77, 0x77, 0x77, 0x77] }
`;
    const r = runFlow(parseFlow(flow('{ fill: 0x77, length: 16 }', extra), 'read-back.yaml'), {
      kernel: 'v6.16',
    });
    expect(r.passed).toBe(true);
    expect(r.steps.find((s) => s.name === 'vmm-read')?.outcome).toEqual({ kind: 'ok', value: 4 });
  });

  it('a different byte makes the read step unexpected, with address, offset and bytes', () => {
    const extra = `  - name: vmm-read
    read: { addr: "$ram + 0x10", length: 4, expect: { hex: "77 00" } }
`;
    const r = runFlow(parseFlow(flow('{ fill: 0x77, length: 16 }', extra), 'read-back.yaml'), {
      kernel: 'v6.16',
    });
    expect(r.firstUnexpected?.name).toBe('vmm-read');
    expect(r.firstUnexpected?.explanation).toMatch(
      /read of 4 bytes at 0x[0-9a-f]+ returned \[77 77 77\] at offset 1, expected \[00\]/,
    );
  });

  it('an unmapped address is SIGSEGV, which a step can expect', () => {
    const extra = `  - name: vmm-read
    read: { addr: 0x1000, length: 1 }
    expect: SIGSEGV
`;
    const r = runFlow(parseFlow(flow('{ fill: 0x77, length: 16 }', extra), 'read-back.yaml'), {
      kernel: 'v6.16',
    });
    expect(r.passed).toBe(true);
    expect(r.steps.find((s) => s.name === 'vmm-read')?.outcome.kind).toBe('signal');
  });

  it('the loader rejects an unknown field of a read step with file:line:column', () => {
    const extra = `  - read: { addr: $ram, len: 4 }
`;
    let err: unknown;
    try {
      parseFlow(flow('{ fill: 0x77, length: 16 }', extra), 'read-back.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FlowLoadError);
    const lines = (err as FlowLoadError).problems.map(formatProblem);
    expect(lines.some((l) => /^read-back\.yaml:\d+:\d+: .*len/.test(l))).toBe(true);
  });
});
