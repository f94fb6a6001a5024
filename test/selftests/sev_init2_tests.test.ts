/**
 * tools/testing/selftests/kvm/x86/sev_init2_tests.c (torvalds/linux 34c55367af96), case by case, on
 * an 'snp' host for every profile with KVM_SEV_INIT2 (v6.11-rc1 on; v6.8 has no SEV VM types, so no
 * case is generated for it). supported_vmsa_features is the modelled host's
 * KVM_X86_SEV_VMSA_FEATURES (DebugSwap), which the selftest reads with KVM_GET_DEVICE_ATTR.
 * __sev_ioctl() asserts cmd.error == SEV_RET_SUCCESS whenever the ioctl succeeds.
 */
import { describe, expect, it } from 'vitest';
import { SEV_SUPPORTED_VMSA_FEATURES } from '../../src/kernel/arch/sev/sev.js';
import { createHost } from '../../src/kernel/host.js';
import { allProfiles } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import '../../src/kernel/arch/register.js';

const KNOWN_FEATURES = BigInt(uapi.SVM_SEV_FEAT_DEBUG_SWAP);
const kernels = allProfiles().filter((p) => p.vmTypes.sev);

function sevIoctl(kernel: string, vmType: number, init: Record<string, unknown>): string {
  const host = createHost({ kernel, platform: 'snp' });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', vmType);
  const cmd = { id: uapi.KVM_SEV_INIT2, data: init, sev_fd: host.open('/dev/sev'), error: 0 };
  try {
    host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
  } catch (e) {
    return (e as { code: string }).code;
  }
  expect(cmd.error).toBe(uapi.SEV_RET_SUCCESS);
  return 'ok';
}

describe.each(kernels.map((p) => [p.name, p] as const))('sev_init2_tests.c on %s', (kernel, profile) => {
  it('sev_init2_tests.c main: KVM_CAP_VM_TYPES reports SEV, SEV-ES (and SNP when the kernel has it)', () => {
    const host = createHost({ kernel, platform: 'snp' });
    const types = host.ioctl(host.open('/dev/kvm'), 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_VM_TYPES);
    expect(types & (1 << uapi.KVM_X86_SEV_VM)).toBeTruthy();
    expect(types & (1 << uapi.KVM_X86_SEV_ES_VM)).toBeTruthy();
    expect(Boolean(types & (1 << uapi.KVM_X86_SNP_VM))).toBe(profile.vmTypes.snp);
  });

  it('sev_init2_tests.c test_vm_types: test_init2 on SEV, SEV-ES, SNP', () => {
    expect(sevIoctl(kernel, uapi.KVM_X86_SEV_VM, {})).toBe('ok');
    expect(sevIoctl(kernel, uapi.KVM_X86_SEV_ES_VM, {})).toBe('ok');
    if (profile.vmTypes.snp) expect(sevIoctl(kernel, uapi.KVM_X86_SNP_VM, {})).toBe('ok');
  });

  it('sev_init2_tests.c test_vm_types: test_init2_invalid "VM type is KVM_X86_DEFAULT_VM" / "KVM_X86_SW_PROTECTED_VM"', () => {
    expect(sevIoctl(kernel, uapi.KVM_X86_DEFAULT_VM, {})).toBe('EINVAL');
    expect(sevIoctl(kernel, uapi.KVM_X86_SW_PROTECTED_VM, {})).toBe('EINVAL');
  });

  const types = [
    uapi.KVM_X86_SEV_VM,
    uapi.KVM_X86_SEV_ES_VM,
    ...(profile.vmTypes.snp ? [uapi.KVM_X86_SNP_VM] : []),
  ];
  it.each(types)('sev_init2_tests.c test_flags(type %i): every flag bit is "invalid flag"', (type) => {
    for (let i = 0; i < 32; i++) expect(sevIoctl(kernel, type, { flags: 2 ** i })).toBe('EINVAL');
  });

  it.each(types)(
    'sev_init2_tests.c test_features(type %i): unknown features fail, known supported ones pass',
    (type) => {
      const supported = type === uapi.KVM_X86_SEV_VM ? 0n : SEV_SUPPORTED_VMSA_FEATURES;
      for (let i = 0n; i < 64n; i++) {
        const bit = 1n << i;
        if (!(supported & bit)) expect(sevIoctl(kernel, type, { vmsa_features: bit })).toBe('EINVAL');
        else if (KNOWN_FEATURES & bit) expect(sevIoctl(kernel, type, { vmsa_features: bit })).toBe('ok');
      }
    },
  );
});
