/**
 * /dev/kvm and vCPU limits. Expected values from the kernel: virt/kvm/kvm_main.c kvm_dev_ioctl()
 * (KVM_GET_VCPU_MMAP_SIZE: `if (arg) goto out;` with r = -EINVAL), arch/x86/include/asm/kvm_host.h
 * (KVM_MAX_VCPU_IDS = KVM_MAX_VCPUS * KVM_VCPU_ID_RATIO, ratio 4; the model's KVM_MAX_VCPUS is the
 * MAXSMP value 4096), arch/x86/kvm/x86.c kvm_vm_ioctl_check_extension() (KVM_CAP_MAX_VCPU_ID ->
 * KVM_MAX_VCPU_IDS) and kvm_vm_ioctl_create_vcpu() (id >= KVM_MAX_VCPU_IDS -> -EINVAL).
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../../src/index.js';
import { errnoOf } from '../errno-of.js';

describe.each(['v6.8', 'v7.0'])('/dev/kvm [%s]', (kernel) => {
  it('KVM_GET_VCPU_MMAP_SIZE: 3 pages; a non-zero argument -> EINVAL', () => {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    expect(host.ioctl(kvm, 'KVM_GET_VCPU_MMAP_SIZE', 0)).toBe(3 * 4096);
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_VCPU_MMAP_SIZE', 1))).toBe('EINVAL');
  });

  it('another ioctl on /dev/kvm: kvm_arch_dev_ioctl() default, -EINVAL on x86 (a 6.18.44 host agrees)', () => {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_CREATE_VCPU', 0))).toBe('EINVAL');
    expect(errnoOf(() => host.ioctl(kvm, 'KVM_SET_USER_MEMORY_REGION', {}))).toBe('EINVAL');
  });

  it('vCPU ids up to KVM_MAX_VCPU_IDS (4 x KVM_MAX_VCPUS) - 1', () => {
    const host = createHost({ kernel });
    const kvm = host.open('/dev/kvm');
    expect(host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_MAX_VCPUS)).toBe(4096);
    expect(host.ioctl(kvm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_MAX_VCPU_ID)).toBe(16384);
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', 0);
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 5000)).toBe('number');
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 16383)).toBe('number');
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_VCPU', 16384))).toBe('EINVAL');
  });
});

describe('KVM_SET_CPUID2 (arch/x86/kvm/cpuid.c kvm_vcpu_ioctl_set_cpuid2)', () => {
  it('nent above KVM_MAX_CPUID_ENTRIES (256) -> E2BIG; fewer readable entries than nent -> EFAULT', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const entry = { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: 257, entries: [] }))).toBe('E2BIG');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: 2, entries: [entry] }))).toBe('EFAULT');
    expect(host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: 1, entries: [entry] })).toBe(0);
  });
});

describe('KVM_CREATE_VCPU and KVM_SET_CPUID2 against a 6.18.44 host (an audit)', () => {
  it('a vCPU whose fd cannot be installed (EMFILE) is undone: the id can be created again (kvm_vm_ioctl_create_vcpu unwinds)', () => {
    const host = createHost({ kernel: 'v6.18' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    // fds 3 and 4 are /dev/kvm and the VM: a soft limit of 5 leaves no fd for the vCPU.
    host.fds.setSoftLimit(5);
    expect(errnoOf(() => host.ioctl(vm, 'KVM_CREATE_VCPU', 5))).toBe('EMFILE');
    host.fds.setSoftLimit(6);
    expect(typeof host.ioctl(vm, 'KVM_CREATE_VCPU', 5)).toBe('number');
  });

  it('after KVM_RUN the CPUID is frozen: the same table again is 0, another is -EINVAL (kvm_cpuid_check_equal)', () => {
    const host = createHost({ kernel: 'v6.18' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const table = (eax: number) => ({
      nent: 1,
      entries: [{ function: 0, index: 0, flags: 0, eax, ebx: 0, ecx: 0, edx: 0 }],
    });
    expect(host.ioctl(vcpu, 'KVM_SET_CPUID2', table(0xd))).toBe(0);
    expect(host.ioctl(vcpu, 'KVM_SET_CPUID2', table(0xe))).toBe(0); // before the first run: any table
    host.guest(vcpu).load([{ op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    expect(host.ioctl(vcpu, 'KVM_SET_CPUID2', table(0xe))).toBe(0);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_CPUID2', table(0xd)))).toBe('EINVAL');
  });

  /** A vCPU that has run with `entries` as its CPUID. */
  function ranWith(entries: object[]) {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: entries.length, entries });
    host.guest(vcpu).load([{ op: 'hlt' }]);
    host.ioctl(vcpu, 'KVM_RUN');
    return { host, vcpu };
  }
  const leaf = (fn: number, index: number, eax = 0, ebx = 0, ecx = 0, edx = 0) => ({
    function: fn,
    index,
    flags: fn === 7 || fn === 0xd ? 1 : 0,
    eax,
    ebx,
    ecx,
    edx,
  });

  it('after KVM_RUN, tables that differ only in the bits kvm_update_cpuid_runtime() rewrites compare equal (OSXSAVE, APIC, OSPKE, the XSAVE sizes)', () => {
    const base = [
      leaf(1, 0, 0x806f0, 0, 0, 0),
      leaf(7, 0),
      leaf(0xd, 0, 7, 0x240),
      leaf(0xd, 1, 0b1010, 0x340),
    ];
    const { host, vcpu } = ranWith(base);
    const again = [
      leaf(1, 0, 0x806f0, 0, 1 << 27, 1 << 9),
      leaf(7, 0, 0, 0, 1 << 4),
      leaf(0xd, 0, 7, 0x988),
      leaf(0xd, 1, 0b1010, 0x100),
    ];
    expect(host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: 4, entries: again })).toBe(0);
    // Any other bit still counts: CPUID.1 ECX bit 26 (XSAVE) is not rewritten.
    again[0] = leaf(1, 0, 0x806f0, 0, 1 << 26, 0);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_CPUID2', { nent: 4, entries: again }))).toBe('EINVAL');
    // CPUID.0xD.1 EBX is rewritten only when XSAVEC or XSAVES is enumerated.
    const plain = ranWith([leaf(0xd, 1, 0, 0x340)]);
    expect(
      errnoOf(() =>
        plain.host.ioctl(plain.vcpu, 'KVM_SET_CPUID2', { nent: 1, entries: [leaf(0xd, 1, 0, 0x100)] }),
      ),
    ).toBe('EINVAL');
  });

  it('kvm_check_cpuid(): AMX tile data in CPUID.0xD.0 -> EPERM (no ARCH_REQ_XCOMP_GUEST_PERM); after KVM_RUN the equality check comes first (-EINVAL)', () => {
    const host = createHost({ kernel: 'v7.0' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    const amx = { nent: 1, entries: [leaf(0xd, 0, 7 | (1 << 17) | (1 << 18), 0x2b00)] };
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_SET_CPUID2', amx))).toBe('EPERM');
    const { host: h2, vcpu: v2 } = ranWith([leaf(0xd, 0, 7, 0x240)]);
    expect(errnoOf(() => h2.ioctl(v2, 'KVM_SET_CPUID2', amx))).toBe('EINVAL');
  });
});

describe('KVM_CHECK_EXTENSION of the features the model has (kvm_vm_ioctl_check_extension_generic, x86 kvm_vm_ioctl_check_extension)', () => {
  // 1 on /dev/kvm and on every VM type: generic (memslot fixes, VM-fd CHECK_EXTENSION / ENABLE_CAP)
  // and x86's unconditional list.
  const ones = [
    uapi.KVM_CAP_MMU_SHADOW_CACHE_CONTROL,
    uapi.KVM_CAP_SET_TSS_ADDR,
    uapi.KVM_CAP_DESTROY_MEMORY_REGION_WORKS,
    uapi.KVM_CAP_JOIN_MEMORY_REGIONS_WORKS,
    uapi.KVM_CAP_PIT2,
    uapi.KVM_CAP_ENABLE_CAP_VM,
    uapi.KVM_CAP_CHECK_EXTENSION_VM,
    uapi.KVM_CAP_IMMEDIATE_EXIT,
  ];
  const types = [uapi.KVM_X86_DEFAULT_VM, uapi.KVM_X86_SW_PROTECTED_VM, uapi.KVM_X86_SNP_VM];
  for (const kernel of ['v6.11', 'v7.0']) {
    it(`1 on /dev/kvm, DEFAULT, SW_PROTECTED and SNP VMs [${kernel}]`, () => {
      const host = createHost({ kernel, platform: 'snp' });
      const kvm = host.open('/dev/kvm');
      const fds = [kvm, ...types.map((t) => host.ioctl(kvm, 'KVM_CREATE_VM', t))];
      for (const fd of fds)
        expect(ones.map((c) => host.ioctl(fd, 'KVM_CHECK_EXTENSION', c))).toEqual(ones.map(() => 1));
    });
  }
  // d30d9ee94cc0 (6.11-rc7): kvm_arch_has_readonly_mem(), i.e. not for VMs with protected state
  // (SEV-ES, SNP; 6.10+ refuses their read-only memslots). Before it, 1 everywhere.
  it.each([
    ['v6.11-rc1', [1, 1, 1, 1]],
    ['v6.11', [1, 1, 1, 0]],
    ['v7.0', [1, 1, 1, 0]],
  ] as const)('KVM_CAP_READONLY_MEM on /dev/kvm, DEFAULT, SW_PROTECTED, SNP [%s]', (kernel, want) => {
    const host = createHost({ kernel, platform: 'snp' });
    const kvm = host.open('/dev/kvm');
    const fds = [kvm, ...types.map((t) => host.ioctl(kvm, 'KVM_CREATE_VM', t))];
    expect(fds.map((fd) => host.ioctl(fd, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_READONLY_MEM))).toEqual([
      ...want,
    ]);
  });
});

describe('KVM_CAP_X86_SMM (x86 kvm_vm_ioctl_check_extension: has_emulated_msr(kvm, MSR_IA32_SMBASE))', () => {
  it.each(['v6.16', 'v7.0'])(
    '1 on /dev/kvm, DEFAULT and SW_PROTECTED VMs; 0 on SNP (sev_es_guest) and TD VMs [%s]',
    (kernel) => {
      const snp = createHost({ kernel, platform: 'snp' });
      const tdx = createHost({ kernel, platform: 'tdx' });
      const cap = (host: ReturnType<typeof createHost>, type?: number) => {
        const kvm = host.open('/dev/kvm');
        const fd = type === undefined ? kvm : host.ioctl(kvm, 'KVM_CREATE_VM', type);
        return host.ioctl(fd, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_X86_SMM);
      };
      expect([
        cap(snp),
        cap(snp, uapi.KVM_X86_DEFAULT_VM),
        cap(snp, uapi.KVM_X86_SW_PROTECTED_VM),
        cap(snp, uapi.KVM_X86_SNP_VM),
        cap(tdx, uapi.KVM_X86_TDX_VM),
      ]).toEqual([1, 1, 1, 0, 0]);
    },
  );
});
