/**
 * KVM_MEMORY_ENCRYPT_OP for TDX: every gate and errno of arch/x86/kvm/vmx/tdx.c, per profile.
 * Expected values from torvalds/linux tdx.c @3829d81b6958 (6.16: tdx_vm_ioctl, tdx_get_capabilities,
 * tdx_td_init, setup_tdparams, tdx_vcpu_create, tdx_vcpu_ioctl, tdx_vcpu_init,
 * tdx_vcpu_init_mem_region, tdx_td_finalize) and kvm-x86/linux tdx.c @09c6f74ecb86 (6.19+ paths).
 */
import { describe, expect, it } from 'vitest';
import { createHost, uapi } from '../../src/index.js';
import {
  buildTd,
  errnoOf,
  finalize,
  GPAW48,
  initMemRegion,
  initVm,
  MiB,
  TDX_PROFILES,
  tdCmd,
  tdVcpu,
  tdVm,
  UPSTREAM,
  X2APIC_CPUID,
} from './td.js';

const caps = (nent: number) => ({ cpuid: { nent } });

for (const kernel of TDX_PROFILES) {
  describe(`TDX VM commands [${kernel}]`, () => {
    it('tdx_vm_ioctl: hw_error set on input, an unknown id -> -EINVAL', () => {
      const td = tdVm(kernel);
      const cmd = { ...tdCmd('KVM_TDX_CAPABILITIES', caps(64)), hw_error: 1 };
      expect(errnoOf(() => td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EINVAL');
      expect(
        errnoOf(() => td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0))),
      ).toBe('EINVAL');
      expect(
        errnoOf(() =>
          td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', { id: 99, flags: 0, data: 0, hw_error: 0 }),
        ),
      ).toBe('EINVAL');
    });

    it('KVM_TDX_CAPABILITIES: flags -> -EINVAL, bad data -> -EFAULT, cpuid.nent too small -> -E2BIG, then the caps', () => {
      const td = tdVm(kernel);
      const op = (c: Record<string, unknown>) => td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', c);
      expect(errnoOf(() => op(tdCmd('KVM_TDX_CAPABILITIES', caps(64), 1)))).toBe('EINVAL');
      expect(errnoOf(() => op(tdCmd('KVM_TDX_CAPABILITIES', 0)))).toBe('EFAULT');
      const small = caps(1);
      expect(errnoOf(() => op(tdCmd('KVM_TDX_CAPABILITIES', small)))).toBe('E2BIG');
      expect(small.cpuid.nent).toBe(1); // nothing copied back on -E2BIG
      const c: Record<string, unknown> = caps(64);
      op(tdCmd('KVM_TDX_CAPABILITIES', c));
      // KVM_SUPPORTED_TD_ATTRS is TDX_TD_ATTR_SEPT_VE_DISABLE (bit 28).
      expect(c['supported_attrs']).toBe(1 << 28);
      const cpuid = c['cpuid'] as { nent: number; entries: Array<{ function: number; eax: number }> };
      expect(cpuid.entries.length).toBe(cpuid.nent);
      // GPAW bits of 0x80000008 are reported configurable (td_init_cpuid_entry2).
      expect((cpuid.entries.find((e) => e.function === 0x80000008)!.eax >>> 16) & 0xff).toBe(0xff);
    });

    it('KVM_CREATE_VCPU before KVM_TDX_INIT_VM -> -EIO (tdx_vcpu_create)', () => {
      const td = tdVm(kernel);
      expect(errnoOf(() => td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', 0))).toBe('EIO');
    });

    it('KVM_TDX_INIT_VM: checks in tdx_td_init/setup_tdparams order', () => {
      const base = () => ({ attributes: 0n, xfam: 0x3n, cpuid: { nent: 1, entries: [GPAW48] } });
      const tryInit = (data: unknown, flags = 0) => {
        const td = tdVm(kernel);
        return errnoOf(() =>
          td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VM', data, flags)),
        );
      };
      expect(tryInit(base(), 1)).toBe('EINVAL'); // flags
      expect(tryInit(7)).toBe('EFAULT'); // data is not a struct
      expect(tryInit({ ...base(), cpuid: { nent: 257, entries: [] } })).toBe('E2BIG'); // > KVM_MAX_CPUID_ENTRIES
      expect(tryInit({ ...base(), cpuid: { nent: 2, entries: [GPAW48] } })).toBe('EFAULT'); // entries unreadable
      expect(tryInit({ ...base(), reserved: [0, 1] })).toBe('EINVAL');
      expect(tryInit({ ...base(), cpuid: { nent: 1, padding: 1, entries: [GPAW48] } })).toBe('EINVAL');
      expect(tryInit({ ...base(), attributes: 1n })).toBe('EINVAL'); // DEBUG not in KVM_SUPPORTED_TD_ATTRS
      expect(tryInit({ ...base(), xfam: 1n << 40n })).toBe('EINVAL');
      expect(tryInit({ ...base(), cpuid: { nent: 0, entries: [] } })).toBe('EINVAL'); // no 0x80000008
      expect(tryInit({ ...base(), cpuid: { nent: 1, entries: [{ ...GPAW48, eax: 39 << 16 }] } })).toBe(
        'EINVAL',
      ); // GPAW
      const stray = { function: 0x4000_0000, index: 0, flags: 0, eax: 0 };
      expect(tryInit({ ...base(), cpuid: { nent: 2, entries: [GPAW48, stray] } })).toBe('EINVAL'); // copy_cnt != nent
      expect(tryInit(base())).toBeUndefined();
    });

    it('KVM_TDX_INIT_VM twice -> -EINVAL; GPAW 52 moves the shared bit to 51', () => {
      const td = tdVm(kernel);
      const cmd = initVm(td, {
        attributes: 0n,
        xfam: 0x3n,
        cpuid: { nent: 1, entries: [{ ...GPAW48, eax: 52 << 16 }] },
      });
      expect(cmd['hw_error']).toBe(0);
      expect(errnoOf(() => initVm(td))).toBe('EINVAL');
      const vcpu = tdVcpu(td);
      td.host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0));
      const out = { nent: 8 };
      td.host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_GET_CPUID', out));
      const e = (out as { entries?: Array<{ function: number; eax: number }> }).entries!;
      expect((e.find((x) => x.function === 0x80000008)!.eax >>> 16) & 0xff).toBe(52);
    });

    it('vCPU commands: KVM_TDX_INIT_VCPU flags / twice -> -EINVAL; GET_CPUID small nent -> -E2BIG with nent', () => {
      const td = tdVm(kernel);
      initVm(td);
      const vcpu = tdVcpu(td);
      const op = (c: Record<string, unknown>) => td.host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', c);
      expect(errnoOf(() => op({ ...tdCmd('KVM_TDX_INIT_VCPU', 0), hw_error: 5 }))).toBe('EINVAL');
      expect(errnoOf(() => op(tdCmd('KVM_TDX_INIT_VCPU', 0, 1)))).toBe('EINVAL');
      // INIT_MEM_REGION before INIT_VCPU: vCPU not initialized.
      expect(
        errnoOf(() => op(tdCmd('KVM_TDX_INIT_MEM_REGION', { source_addr: 0, gpa: 0, nr_pages: 1 }))),
      ).toBe('EINVAL');
      op(tdCmd('KVM_TDX_INIT_VCPU', 0x800000));
      expect(errnoOf(() => op(tdCmd('KVM_TDX_INIT_VCPU', 0)))).toBe('EINVAL');
      expect(errnoOf(() => op(tdCmd('KVM_TDX_CAPABILITIES', caps(64))))).toBe('EINVAL'); // a VM command
      const out: Record<string, unknown> = { nent: 0 };
      expect(errnoOf(() => op(tdCmd('KVM_TDX_GET_CPUID', out)))).toBe('E2BIG');
      expect(out['nent']).toBe(1);
      // KVM_RUN before FINALIZE_VM: tdx_vcpu_pre_run, which kvm_arch_vcpu_ioctl_run() calls after its
      // immediate_exit check (kvm_x86_vcpu_pre_run).
      expect(errnoOf(() => td.host.ioctl(vcpu, 'KVM_RUN'))).toBe('EINVAL');
      td.host.kvmRun(vcpu).immediate_exit = 1;
      expect(errnoOf(() => td.host.ioctl(vcpu, 'KVM_RUN'))).toBe('EINTR');
    });

    it('KVM_TDX_INIT_MEM_REGION: flags, alignment, empty, wrap and shared-bit checks -> -EINVAL', () => {
      const td = buildTd(kernel);
      const bad = (region: Record<string, unknown>, flags = 0) =>
        errnoOf(() =>
          td.host.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_MEM_REGION', region, flags)),
        );
      const ok = { source_addr: td.src, gpa: 0x1000, nr_pages: 1 };
      expect(bad(ok, 2)).toBe('EINVAL');
      expect(bad({ ...ok, source_addr: td.src + 8 })).toBe('EINVAL');
      expect(bad({ ...ok, gpa: 0x1008 })).toBe('EINVAL');
      expect(bad({ ...ok, nr_pages: 0 })).toBe('EINVAL');
      expect(bad({ ...ok, gpa: 2n ** 64n - 4096n, nr_pages: 2 })).toBe('EINVAL');
      expect(bad({ ...ok, gpa: 1n << 47n })).toBe('EINVAL'); // the shared bit (GPAW 48)
      expect(bad({ ...ok, gpa: (1n << 47n) - 4096n, nr_pages: 2 })).toBe('EINVAL'); // last page shared
      expect(bad(7 as unknown as Record<string, unknown>)).toBe('EFAULT');
    });

    it('KVM_TDX_INIT_MEM_REGION: gfn outside a guest_memfd slot or not private -> -EINVAL (kvm_gmem_populate)', () => {
      const td = buildTd(kernel);
      const upstream = (UPSTREAM as readonly string[]).includes(kernel);
      expect(errnoOf(() => initMemRegion(td, 4 * MiB))).toBe('EINVAL');
      td.host.ioctl(td.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: 0x5000,
        size: 4096,
        attributes: 0,
        flags: 0,
      });
      expect(errnoOf(() => initMemRegion(td, 0x5000))).toBe('EINVAL');
      // An unmapped source: GUP fails with -EFAULT (dev tree: after the mirror walk would fail).
      if (upstream) expect(errnoOf(() => initMemRegion(td, 0x6000, 1, 0, 0x1000))).toBe('EFAULT');
    });

    it('KVM_TDX_INIT_MEM_REGION copies the region back with the progress made', () => {
      const td = buildTd(kernel);
      const upstream = (UPSTREAM as readonly string[]).includes(kernel);
      if (!upstream) {
        for (const gpa of [0x1000, 0x2000])
          td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa, size: 4096, flags: 0 });
      }
      // Three pages; the third is shared, so kvm_gmem_populate stops there.
      td.host.ioctl(td.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
        address: 0x3000,
        size: 4096,
        attributes: 0,
        flags: 0,
      });
      const region = { source_addr: td.src, gpa: 0x1000, nr_pages: 3 };
      const e = errnoOf(() =>
        td.host.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_MEM_REGION', region, 1)),
      );
      if (kernel === 'tdx-dev-2024-07+eexist') {
        // The founding bug: the pre-faulted first page is already up to date; no progress.
        expect(e).toBe('EEXIST');
        expect(region).toEqual({ source_addr: td.src, gpa: 0x1000, nr_pages: 3 });
        return;
      }
      expect(e).toBe('EINVAL');
      expect(region).toEqual({ source_addr: td.src + 0x2000, gpa: 0x3000, nr_pages: 1 });
    });

    it('KVM_TDX_FINALIZE_VM: before INIT_VM or twice -> -EINVAL; afterwards every vCPU command -> -EINVAL', () => {
      const td0 = tdVm(kernel);
      expect(errnoOf(() => finalize(td0))).toBe('EINVAL');
      const td = buildTd(kernel);
      const cmd = finalize(td);
      expect(cmd['hw_error']).toBe(0);
      expect(errnoOf(() => finalize(td))).toBe('EINVAL');
      expect(errnoOf(() => initMemRegion(td, 0x1000))).toBe('EINVAL');
      expect(
        errnoOf(() =>
          td.host.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_GET_CPUID', { nent: 8 })),
        ),
      ).toBe('EINVAL');
    });
  });
}

describe('KVM_TDX_INIT_MEM_REGION of a GPA already added, per version', () => {
  for (const kernel of ['v6.16', 'v6.19']) {
    it(`${kernel}: the folio is up to date -> -EEXIST (kvm_gmem_populate)`, () => {
      const td = buildTd(kernel);
      initMemRegion(td, 0x1000);
      expect(errnoOf(() => initMemRegion(td, 0x1000))).toBe('EEXIST');
    });
  }
  it('v7.0: no common-code check; the mirror SPTE is present, RET_PF_SPURIOUS -> -EIO (kvm_tdp_mmu_map_private_pfn; Sean Christopherson <akPEKslqAhygyjhg@google.com>)', () => {
    const td = buildTd('v7.0');
    initMemRegion(td, 0x1000);
    expect(errnoOf(() => initMemRegion(td, 0x1000))).toBe('EIO');
  });
  it('tdx-dev-2024-07 (no 09/12): PAGE.ADD of an added page fails in the module -> -EIO', () => {
    const td = buildTd('tdx-dev-2024-07');
    td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x1000, size: 4096, flags: 0 });
    initMemRegion(td, 0x1000);
    expect(errnoOf(() => initMemRegion(td, 0x1000))).toBe('EIO');
  });
});

describe('CPUID.(7,0) TSX (HLE bit 4, RTM bit 11 of EBX) and WAITPKG (bit 5 of ECX)', () => {
  const leaf7 = (ebx: number, ecx: number) => ({ function: 7, index: 0, flags: 1, eax: 0, ebx, ecx, edx: 0 });
  const tryInit = (kernel: string, entry: Record<string, number>) => {
    const td = tdVm(kernel);
    return errnoOf(() =>
      initVm(td, { attributes: 0n, xfam: 0x3n, cpuid: { nent: 2, entries: [GPAW48, entry] } }),
    );
  };
  for (const kernel of UPSTREAM) {
    it(`tdx.c setup_tdparams_cpuids(): tdx_unsupported_cpuid() -> -EINVAL; td_init_cpuid_entry2() hides them from KVM_TDX_CAPABILITIES [${kernel}]`, () => {
      expect(tryInit(kernel, leaf7(1 << 4, 0))).toBe('EINVAL'); // HLE
      expect(tryInit(kernel, leaf7(1 << 11, 0))).toBe('EINVAL'); // RTM
      expect(tryInit(kernel, leaf7(0, 1 << 5))).toBe('EINVAL'); // WAITPKG
      expect(tryInit(kernel, leaf7(1 << 5, 1 << 4))).toBeUndefined(); // other bits of the same leaf
      const td = tdVm(kernel);
      const c: Record<string, unknown> = caps(64);
      td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_CAPABILITIES', c));
      const entries = (
        c['cpuid'] as { entries: Array<{ function: number; index: number; ebx: number; ecx: number }> }
      ).entries;
      const e7 = entries.find((e) => e.function === 7 && e.index === 0)!;
      expect(e7.ebx & ((1 << 4) | (1 << 11))).toBe(0);
      expect(e7.ecx & (1 << 5)).toBe(0);
    });
  }
  it('tdx-dev-2024-07: no such check yet (tdx_unsupported_cpuid was posted in December 2024; inferred)', () => {
    expect(tryInit('tdx-dev-2024-07', leaf7(1 << 11, 1 << 5))).toBeUndefined();
  });
});

describe('source_addr 0 (NULL) per version', () => {
  it('v6.16, v6.19: tdx_gmem_post_populate GUPs it -> -EFAULT', () => {
    for (const kernel of ['v6.16', 'v6.19'])
      expect(errnoOf(() => initMemRegion(buildTd(kernel), 0x1000, 1, 0, 0))).toBe('EFAULT');
  });
  it('v7.0: common code skips the GUP of a NULL source; tdx_gmem_post_populate -> -EOPNOTSUPP', () => {
    expect(errnoOf(() => initMemRegion(buildTd('v7.0'), 0x1000, 1, 0, 0))).toBe('EOPNOTSUPP');
  });
});

describe('nr_premapped (6.16 and the dev tree; removed in 6.19)', () => {
  it('tdx-dev-2024-07: a pre-faulted page never added blocks FINALIZE (-EINVAL); zapping it (attribute to shared) unblocks', () => {
    const td = buildTd('tdx-dev-2024-07');
    td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x1000, size: 4096, flags: 0 });
    expect(errnoOf(() => finalize(td))).toBe('EINVAL');
    td.host.ioctl(td.vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
      address: 0x1000,
      size: 4096,
      attributes: 0,
      flags: 0,
    });
    expect(errnoOf(() => finalize(td))).toBeUndefined();
  });
  it('the KVM_TDX_CMD ids accept numbers as well as names', () => {
    const td = tdVm('v6.16');
    const c = { id: uapi.KVM_TDX_CAPABILITIES, flags: 0, data: caps(64), hw_error: 0 };
    expect(td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', c)).toBe(0);
  });
});

describe('KVM_MEMORY_ENCRYPT_OP on a vCPU that is not a TD vCPU (arch/x86/kvm/vmx/main.c, x86.c)', () => {
  // kvm_arch_vcpu_ioctl() (6.16+): -ENOTTY when the vendor has no vcpu_mem_enc_ioctl; with TDX enabled
  // vt_vcpu_mem_enc_ioctl() refuses a non-TD vCPU with -EINVAL. At VM level vt_mem_enc_ioctl()
  // gives -ENOTTY for a non-TD VM.
  const swVcpu = (kernel: string, platform?: 'tdx' | 'snp') => {
    const host = createHost(platform ? { kernel, platform } : { kernel });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    return { host, vm, vcpu: host.ioctl(vm, 'KVM_CREATE_VCPU', 0) };
  };
  const cmd = () => tdCmd('KVM_TDX_INIT_VCPU', 0);
  it.each(['v6.16', 'v7.0'])('TDX host [%s]: vCPU -> EINVAL, VM -> ENOTTY', (kernel) => {
    const { host, vm, vcpu } = swVcpu(kernel, 'tdx');
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', cmd()))).toBe('EINVAL');
    expect(errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd()))).toBe('ENOTTY');
  });
  it.each([
    ['v6.16', 'snp'],
    ['v7.0', undefined],
  ] as const)('no TDX on the host [%s %s]: vCPU -> ENOTTY', (kernel, platform) => {
    const { host, vcpu } = swVcpu(kernel, platform);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', cmd()))).toBe('ENOTTY');
  });
  // The case came with the TDX series ("KVM: TDX: Do TDX specific vcpu initialization", 6.16):
  // before, kvm_arch_vcpu_ioctl()'s default, -EINVAL, on every host.
  it.each([
    ['v6.8', undefined],
    ['v6.11', 'snp'],
    ['v6.11', 'tdx'],
  ] as const)('before the case existed [%s %s]: vCPU -> EINVAL', (kernel, platform) => {
    const { host, vcpu } = swVcpu(kernel, platform);
    expect(errnoOf(() => host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', cmd()))).toBe('EINVAL');
  });
});

describe('KVM_TDX_CAPABILITIES contents (tdx.c init_kvm_tdx_caps, td_init_cpuid_entry2)', () => {
  // 6.16 final: the struct is kzalloc()ed and copied back whole, user_tdvmcallinfo_1_r11 =
  // TDVMCALLINFO_SETUP_EVENT_NOTIFY_INTERRUPT (BIT(1)); td_init_cpuid_entry2() never sets flags.
  const get = (kernel: string) => {
    const td = tdVm(kernel);
    const data = { cpuid: { nent: 64, padding: 9 }, reserved: [7, 7, 7] } as Record<string, unknown>;
    td.host.ioctl(td.vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_CAPABILITIES', data));
    return data;
  };
  it.each(UPSTREAM)(
    '[%s] user r11 = SETUP_EVENT_NOTIFY_INTERRUPT, the rest 0, reserved zeroed, flags 0',
    (kernel) => {
      const c = get(kernel);
      expect(c['user_tdvmcallinfo_1_r11']).toBe(2);
      expect([
        c['kernel_tdvmcallinfo_1_r11'],
        c['kernel_tdvmcallinfo_1_r12'],
        c['user_tdvmcallinfo_1_r12'],
      ]).toEqual([0, 0, 0]);
      expect(c['reserved']).toEqual([0, 0, 0]);
      expect((c['cpuid'] as { padding: number }).padding).toBe(0);
      const entries = (c['cpuid'] as { entries: { flags: number }[] }).entries;
      expect(entries.length).toBeGreaterThan(0);
      expect(entries.every((e) => e.flags === 0)).toBe(true);
    },
  );
  it('[tdx-dev-2024-07] no TDVMCALL info', () => {
    expect(get('tdx-dev-2024-07')['user_tdvmcallinfo_1_r11']).toBe(0);
  });
});

describe('vCPU command on a finalized TD with an unreadable argument', () => {
  // Up to 6.18 tdx_vcpu_ioctl() checks the TD state before copy_from_user(); 6.19+
  // tdx_vcpu_unlocked_ioctl() copies the command in first (tdx_get_cmd).
  it.each([
    ['v6.16', 'EINVAL'],
    ['tdx-dev-2024-07', 'EINVAL'],
    ['v6.19', 'EFAULT'],
    ['v7.0', 'EFAULT'],
  ])('[%s] -> %s', (kernel, want) => {
    const td = buildTd(kernel);
    finalize(td);
    expect(errnoOf(() => td.host.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', null))).toBe(want);
  });
});

describe('memslots of a TD and the shared bit (x86.c kvm_arch_prepare_memory_region: kvm_is_gfn_alias)', () => {
  const slotAt = (td: ReturnType<typeof tdVm>, gpa: number, size: number) => {
    const hva = td.host.mmap({
      length: size,
      prot: uapi.PROT_READ | uapi.PROT_WRITE,
      flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
    });
    return errnoOf(() =>
      td.host.ioctl(td.vm, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: 3,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: hva,
      }),
    );
  };
  const SHARED = 2 ** 47; // GPAW 48
  it.each(['v6.16', 'v7.0', 'tdx-dev-2024-07'])(
    '[%s] after INIT_VM a slot ending in the shared half -> EINVAL',
    (kernel) => {
      const td = tdVm(kernel);
      initVm(td);
      expect(slotAt(td, SHARED + 0x1000, 0x1000)).toBe('EINVAL');
      // Only the last gfn is checked: a slot that starts below the bit but ends above it fails too.
      expect(slotAt(td, SHARED - 0x1000, 0x2000)).toBe('EINVAL');
      expect(slotAt(td, SHARED - 0x2000, 0x1000)).toBeUndefined();
    },
  );
  it.each(['v6.16', 'v7.0'])(
    '[%s] before INIT_VM the TD has no direct bits: the slot is accepted',
    (kernel) => {
      expect(slotAt(tdVm(kernel), SHARED + 0x1000, 0x1000)).toBeUndefined();
    },
  );
});

describe('TD vCPU prerequisites (tdx.c tdx_vcpu_create, tdx_vcpu_init; x86.c KVM_CAP_SPLIT_IRQCHIP)', () => {
  const bareTd = (kernel: string) => {
    const host = createHost({ kernel, platform: 'tdx' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_TDX_VM);
    return { host, vm };
  };
  const split = (td: { host: ReturnType<typeof createHost>; vm: number }, pins: number) =>
    errnoOf(() =>
      td.host.ioctl(td.vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [pins] }),
    );
  it.each(TDX_PROFILES)(
    '[%s] KVM_CREATE_VCPU without a split IRQCHIP -> EINVAL (after the INIT_VM check)',
    (kernel) => {
      const td = bareTd(kernel);
      expect(errnoOf(() => td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', 0))).toBe('EIO'); // state first
      initVm(td);
      expect(errnoOf(() => td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', 0))).toBe('EINVAL');
      expect(split(td, 24)).toBeUndefined();
      expect(typeof td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', 0)).toBe('number');
    },
  );
  it('KVM_CAP_SPLIT_IRQCHIP: more than KVM_MAX_IRQ_ROUTES (4096) pins -> EINVAL; twice, or after a vCPU -> EEXIST', () => {
    const td = bareTd('v6.16');
    expect(td.host.ioctl(td.vm, 'KVM_CHECK_EXTENSION', uapi.KVM_CAP_SPLIT_IRQCHIP)).toBe(1);
    expect(split(td, 4097)).toBe('EINVAL');
    expect(split(td, 4096)).toBeUndefined();
    expect(split(td, 24)).toBe('EEXIST');
    const host = createHost({ kernel: 'v6.16' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', 0);
    host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    expect(split({ host, vm }, 24)).toBe('EEXIST');
  });
  it.each(TDX_PROFILES)(
    '[%s] KVM_TDX_INIT_VCPU without x2APIC in the vCPU CPUID -> EINVAL (kvm_apic_set_base)',
    (kernel) => {
      const td = tdVm(kernel);
      initVm(td);
      const vcpu = td.host.ioctl(td.vm, 'KVM_CREATE_VCPU', 0);
      const init = () => td.host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0));
      expect(errnoOf(init)).toBe('EINVAL');
      td.host.ioctl(vcpu, 'KVM_SET_CPUID2', X2APIC_CPUID);
      expect(init()).toBe(0);
    },
  );
});
