/**
 * tools/testing/selftests/kvm/x86/sev_init2_tests.c (torvalds/linux 34c55367af96), case by case, on
 * an 'snp' host for every profile with KVM_SEV_INIT2 (v6.11-rc1 on; v6.8 has no SEV VM types, so no
 * case is generated for it). As main() does, supported_vmsa_features is read from /dev/kvm with
 * KVM_GET_DEVICE_ATTR (KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES), never from the model's code.
 * What the attribute must hold comes from sev_hardware_setup(): DebugSwap (0x20) on 6.10 .. 6.17;
 * from 6.18 (kvm-x86-svm-6.18, "KVM: SVM: Enable Secure TSC for SNP guests") also Secure TSC
 * (bit 9, 0x220) on a host with tsc_khz and X86_FEATURE_SNP_SECURE_TSC, which the modelled EPYC
 * 9004 host has. __sev_ioctl() asserts cmd.error == SEV_RET_SUCCESS whenever the ioctl succeeds.
 */
import { describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/kernel/host.js';
import { allProfiles } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import '../../src/kernel/arch/register.js';

const KNOWN_FEATURES = BigInt(uapi.SVM_SEV_FEAT_DEBUG_SWAP);
const kernels = allProfiles().filter((p) => p.vmTypes.sev);
/** Releases whose sev_hardware_setup() adds SVM_SEV_FEAT_SECURE_TSC (6.18 on). */
const SECURE_TSC_KERNELS = new Set(['v6.18', 'v6.19', 'v7.0', 'v6.18+no-direct-map']);

/** kvm_device_attr_get(kvm_fd, group, attr, &val): the value put_user() wrote at attr.addr. */
function kvmDeviceAttrGet(host: Host, kvm: number, group: number, attr: number): bigint {
  const buf = host.mmap({
    length: 4096,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
  });
  expect(host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', { group, attr, addr: buf })).toBe(0);
  return Buffer.from(host.mm.read(buf, 8)).readBigUInt64LE(0);
}

/** main(): TEST_REQUIRE(__kvm_has_device_attr() == 0), then kvm_device_attr_get(). */
function supportedVmsaFeatures(kernel: string): bigint {
  const host = createHost({ kernel, platform: 'snp' });
  const kvm = host.open('/dev/kvm');
  const has = { group: uapi.KVM_X86_GRP_SEV, attr: uapi.KVM_X86_SEV_VMSA_FEATURES };
  expect(host.ioctl(kvm, 'KVM_HAS_DEVICE_ATTR', has)).toBe(0);
  return kvmDeviceAttrGet(host, kvm, uapi.KVM_X86_GRP_SEV, uapi.KVM_X86_SEV_VMSA_FEATURES);
}

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
  it('sev_init2_tests.c main: KVM_CAP_VM_TYPES matches the CPU: SEV, SEV-ES and (6.11 on) SNP', () => {
    // The modelled EPYC host has X86_FEATURE_SEV, SEV_ES and SEV_SNP: have_sev, have_sev_es, and
    // have_snp wherever the kernel has KVM_X86_SNP_VM (6.11 merge window).
    const host = createHost({ kernel, platform: 'snp' });
    const types = host.ioctl(host.open('/dev/kvm'), 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_VM_TYPES);
    expect(types & (1 << uapi.KVM_X86_SEV_VM)).toBeTruthy();
    expect(types & (1 << uapi.KVM_X86_SEV_ES_VM)).toBeTruthy();
    expect(Boolean(types & (1 << uapi.KVM_X86_SNP_VM))).toBe(profile.vmTypes.snp);
  });

  it('sev_init2_tests.c main: __kvm_has_device_attr(KVM_X86_SEV_VMSA_FEATURES) == 0, kvm_device_attr_get() gives sev_supported_vmsa_features', () => {
    const expected = SECURE_TSC_KERNELS.has(kernel)
      ? BigInt(uapi.SVM_SEV_FEAT_DEBUG_SWAP | uapi.SVM_SEV_FEAT_SECURE_TSC)
      : BigInt(uapi.SVM_SEV_FEAT_DEBUG_SWAP);
    expect(supportedVmsaFeatures(kernel)).toBe(expected);
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
      // main(): test_features(KVM_X86_SEV_VM, 0); SEV-ES and SNP with the attribute's value.
      const supported = type === uapi.KVM_X86_SEV_VM ? 0n : supportedVmsaFeatures(kernel);
      for (let i = 0n; i < 64n; i++) {
        const bit = 1n << i;
        if (!(supported & bit)) expect(sevIoctl(kernel, type, { vmsa_features: bit })).toBe('EINVAL');
        else if (KNOWN_FEATURES & bit) expect(sevIoctl(kernel, type, { vmsa_features: bit })).toBe('ok');
      }
    },
  );
});
