/**
 * uapi constants against include/uapi/linux/kvm.h (values as the header defines them; checked in
 * the header's patch context: KVM_CAP_MEMORY_ATTRIBUTES 233 .. KVM_CAP_PRE_FAULT_MEMORY 236,
 * KVM_EXIT_MEMORY_FAULT 39, KVM_SYSTEM_EVENT_SEV_TERM 6 / KVM_SYSTEM_EVENT_TDX_FATAL 7,
 * KVM_EXIT_HYPERCALL_LONG_MODE _BITULL(0), KVM_CAP_SPLIT_IRQCHIP 121, KVM_CAP_EXIT_HYPERCALL 201).
 */
import { describe, expect, it } from 'vitest';
import { uapi } from '../src/index.js';

describe('uapi: include/uapi/linux/kvm.h values', () => {
  it.each([
    ['KVM_CAP_SPLIT_IRQCHIP', 121],
    ['KVM_CAP_EXIT_HYPERCALL', 201],
    ['KVM_CAP_MEMORY_ATTRIBUTES', 233],
    ['KVM_CAP_GUEST_MEMFD', 234],
    ['KVM_CAP_VM_TYPES', 235],
    ['KVM_CAP_PRE_FAULT_MEMORY', 236],
    ['KVM_EXIT_HYPERCALL', 3],
    ['KVM_EXIT_MEMORY_FAULT', 39],
    ['KVM_EXIT_HYPERCALL_LONG_MODE', 1],
    ['KVM_SYSTEM_EVENT_SHUTDOWN', 1],
    ['KVM_SYSTEM_EVENT_RESET', 2],
    ['KVM_SYSTEM_EVENT_CRASH', 3],
    ['KVM_SYSTEM_EVENT_WAKEUP', 4],
    ['KVM_SYSTEM_EVENT_SUSPEND', 5],
    ['KVM_SYSTEM_EVENT_SEV_TERM', 6],
    ['KVM_SYSTEM_EVENT_TDX_FATAL', 7],
  ])('%s = %i', (name, value) => {
    expect((uapi as Record<string, unknown>)[name]).toBe(value);
  });
});

describe('uapi: x86 vCPU register ioctl numbers (_IOR/_IOW(KVMIO 0xAE, nr, struct size), worked out by hand)', () => {
  it.each([
    ['KVM_GET_REGS', 0x8090ae81], // struct kvm_regs: 144 bytes
    ['KVM_SET_REGS', 0x4090ae82],
    ['KVM_GET_SREGS', 0x8138ae83], // struct kvm_sregs: 312 bytes
    ['KVM_SET_SREGS', 0x4138ae84],
    ['KVM_GET_FPU', 0x81a0ae8c], // struct kvm_fpu: 416 bytes
    ['KVM_SET_FPU', 0x41a0ae8d],
  ])('%s = %d', (name, value) => {
    expect((uapi as Record<string, unknown>)[name]).toBe(value);
  });
});

describe('names for messages', () => {
  it('vmTypeName: KVM_X86_*_VM by number; others stay numbers', () => {
    expect([0, 1, 2, 3, 4, 5].map((t) => uapi.vmTypeName(t))).toEqual([
      'KVM_X86_DEFAULT_VM',
      'KVM_X86_SW_PROTECTED_VM',
      'KVM_X86_SEV_VM',
      'KVM_X86_SEV_ES_VM',
      'KVM_X86_SNP_VM',
      'KVM_X86_TDX_VM',
    ]);
    expect(uapi.vmTypeName(9n)).toBe('VM type 9');
  });
  it('sevRetName: psp-sev.h status names (0xb is SEV_RET_BAD_MEASUREMENT); a status without a name in hex', () => {
    expect(uapi.sevRetName(0xb)).toBe('SEV_RET_BAD_MEASUREMENT');
    expect(uapi.sevRetName(0x16)).toBe('SEV_RET_INVALID_PARAM');
    expect(uapi.sevRetName(0x99)).toBe('0x99');
  });
});
