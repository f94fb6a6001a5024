/**
 * Compact state keeps explanations whole: memory-attribute extents store only `seq * 2 + private`
 * (src/kernel/kvm/attributes.ts) and provenance records are (seq, site) pairs
 * (src/kernel/provenance.ts), yet an error still names the call and kernel path that put the page
 * in its state. Also: the Number fast path of KVM_SET_MEMORY_ATTRIBUTES answers exactly as the u64
 * path does, in virt/kvm/kvm_main.c kvm_vm_ioctl_set_mem_attributes()'s check order.
 */
import { describe, expect, it } from 'vitest';
import {
  createHost,
  getProfile,
  type Host,
  InvariantViolation,
  type KernelProfile,
  SyscallError,
  uapi,
} from '../src/index.js';
import { KernelError } from '../src/kernel/errors.js';
import { Tracer } from '../src/kernel/provenance.js';
import { s64, scalar, u8, u16, u32, u64 } from '../src/kernel/uaccess.js';
import { snpVm } from './sev/snp-vm.js';
import { buildTd, initMemRegion, syscallError } from './tdx/td.js';

const GPA = 1 << 30;
const GFN = GPA / 4096;
const ATTR_PATH = 'KVM_SET_MEMORY_ATTRIBUTES > kvm_vm_set_mem_attributes > xa_store';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** SW_PROTECTED VM with one 4-page memslot at GPA that has no guest_memfd, and a vCPU. */
function plainSlotVm(kernel: string | KernelProfile = 'v6.16') {
  const host = createHost({ kernel });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const hva = host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 0,
    flags: 0,
    guest_phys_addr: GPA,
    memory_size: 4 * 4096,
    userspace_addr: hva,
  });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  return { host, vm, vcpu };
}

function setAttr(host: Host, vm: number, attributes: number, pages = 1): number {
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: GPA, size: pages * 4096, attributes, flags: 0 });
  return host.seq; // the seq of the call just made
}

function preFault(host: Host, vcpu: number): SyscallError {
  const e = thrown(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: GPA, size: 4096, flags: 0 }));
  expect(e).toBeInstanceOf(SyscallError);
  return e as SyscallError;
}

describe('a missing memslot names the update that removed it', () => {
  // kvm_tdp_map_page(): no memslot is RET_PF_EMULATE -> -ENOENT; the explanation says which
  // KVM_SET_USER_MEMORY_REGION2 left the gfn (deleted or moved the slot), or that none ever covered it.
  const del = { slot: 0, flags: 0, guest_phys_addr: GPA, memory_size: 0, userspace_addr: 0 };
  it('a deleted slot [v6.16]', () => {
    const { host, vm, vcpu } = plainSlotVm();
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', del);
    const seq = host.seq;
    const e = preFault(host, vcpu);
    expect(e.code).toBe('ENOENT');
    expect(e.explanation).toBe(
      `no memslot covers gfn 0x${GFN.toString(16)}: memslot 0 left it at call #${seq} (KVM_SET_USER_MEMORY_REGION2 > __kvm_set_memory_region > kvm_set_memslot(delete))`,
    );
  });
  it('a slot created again covers the gfn: the old deletion is forgotten; a gfn no slot ever covered says so [v6.16]', () => {
    const { host, vm, vcpu } = plainSlotVm();
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', del);
    const hva = host.mmap({ length: 4 * 4096, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', { ...del, memory_size: 4 * 4096, userspace_addr: hva });
    expect(host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: GPA, size: 4096, flags: 0 })).toBe(0);
    const e = thrown(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 2 * GPA, size: 4096, flags: 0 }));
    expect((e as SyscallError).explanation).toBe(`no memslot covers gfn 0x${(2 * GFN).toString(16)}`);
  });
});

describe('attribute provenance is rebuilt from the stored seq', () => {
  // arch/x86/kvm/mmu/mmu.c kvm_mmu_faultin_pfn_gmem() (kvm_faultin_pfn_private() before 6.18):
  // a private fault on a memslot without guest_memfd is -EFAULT; the explanation is the gfn's
  // attribute and the call that set it.
  it('mmu.c kvm_mmu_faultin_pfn_gmem: private gfn, no guest_memfd -> EFAULT naming the KVM_SET_MEMORY_ATTRIBUTES call [v6.16]', () => {
    const { host, vm, vcpu } = plainSlotVm();
    const seq = setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const e = preFault(host, vcpu);
    expect(e.code).toBe('EFAULT');
    expect(e.explanation).toBe(`gfn 0x${GFN.toString(16)} is private since call #${seq} (${ATTR_PATH})`);
  });

  it('the latest of several conversions is named, not the first [v6.16]', () => {
    const { host, vm, vcpu } = plainSlotVm();
    setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE, 4);
    setAttr(host, vm, 0);
    const seq = setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
    expect(preFault(host, vcpu).explanation).toBe(
      `gfn 0x${GFN.toString(16)} is private since call #${seq} (${ATTR_PATH})`,
    );
  });

  it('a conversion that changes nothing (kvm_range_has_memory_attributes) keeps the earlier call [v6.16]', () => {
    const { host, vm, vcpu } = plainSlotVm();
    const seq = setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
    setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE); // already private: kvm_vm_set_mem_attributes returns 0 early
    expect(preFault(host, vcpu).explanation).toContain(`since call #${seq} (`);
  });

  it('a shared extent explains a stale private SPTE (bugs.noZapOnAttributeChange) [v6.11]', () => {
    const p = getProfile('v6.11')!;
    const host = createHost({ kernel: { ...p, name: 'v6.11+bugs', bugs: { noZapOnAttributeChange: true } } });
    const kvm = host.open('/dev/kvm');
    const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 4096, flags: 0 });
    host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
      slot: 0,
      flags: uapi.KVM_MEM_GUEST_MEMFD,
      guest_phys_addr: GPA,
      memory_size: 4096,
      userspace_addr: 0,
      guest_memfd: gmem,
    });
    setAttr(host, vm, uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: GPA, size: 4096, flags: 0 });
    const seq = host.seq + 1;
    const v = thrown(() => setAttr(host, vm, 0));
    expect(v).toBeInstanceOf(InvariantViolation);
    expect((v as InvariantViolation).detail).toContain(
      `gfn 0x${GFN.toString(16)} is shared since call #${seq} (${ATTR_PATH})`,
    );
  });
});

describe('provenance records: (seq, site), interned per syscall', () => {
  it('one record per site and syscall; a new syscall makes a new one with the same path', () => {
    const t = new Tracer();
    t.begin('KVM_PRE_FAULT_MEMORY');
    t.enter('kvm_gmem_get_pfn');
    const a = t.here('folio_mark_uptodate');
    expect(t.here('folio_mark_uptodate')).toBe(a);
    expect(t.here('other')).not.toBe(a);
    t.leave();
    expect(a).toMatchObject({
      seq: 1,
      call: 'KVM_PRE_FAULT_MEMORY',
      path: 'KVM_PRE_FAULT_MEMORY > kvm_gmem_get_pfn > folio_mark_uptodate',
    });
    t.begin('KVM_PRE_FAULT_MEMORY');
    t.enter('kvm_gmem_get_pfn');
    const b = t.here('folio_mark_uptodate');
    expect(b).not.toBe(a);
    expect(b.seq).toBe(2);
    expect(b.path).toBe(a.path);
    expect(JSON.parse(JSON.stringify(b))).toEqual({ seq: 2, call: b.call, path: b.path });
  });

  it('Site.at(seq) rebuilds the record of a stored seq, and is the interned one for the current call', () => {
    const t = new Tracer();
    t.begin('KVM_SET_MEMORY_ATTRIBUTES');
    t.enter('kvm_vm_set_mem_attributes');
    const site = t.site('xa_store');
    const live = t.here('xa_store');
    expect(site.at(1)).toBe(live);
    t.leave();
    t.begin('close');
    const old = site.at(1);
    expect(old).toMatchObject({ seq: 1, call: 'KVM_SET_MEMORY_ATTRIBUTES', path: ATTR_PATH });
  });
});

describe('kvm_main.c kvm_vm_ioctl_set_mem_attributes: number and u64 arguments give the same answer', () => {
  // Checks in the kernel's order: flags, attributes & ~supported, size == 0 or wrap, alignment.
  const cases: Array<[string, { address: number; size: number; attributes: number; flags: number }, string]> =
    [
      ['flags set', { address: GPA, size: 4096, attributes: 0, flags: 1 }, 'EINVAL'],
      ['unsupported attribute bit', { address: GPA, size: 4096, attributes: 16, flags: 0 }, 'EINVAL'],
      ['PRIVATE plus another bit', { address: GPA, size: 4096, attributes: 24, flags: 0 }, 'EINVAL'],
      ['size 0', { address: GPA, size: 0, attributes: 0, flags: 0 }, 'EINVAL'],
      ['address unaligned', { address: GPA + 1, size: 4096, attributes: 0, flags: 0 }, 'EINVAL'],
      ['size unaligned', { address: GPA, size: 100, attributes: 0, flags: 0 }, 'EINVAL'],
      [
        'flags and size 0: flags is checked first',
        { address: 1, size: 0, attributes: 0, flags: 2 },
        'EINVAL',
      ],
      ['private, aligned', { address: GPA, size: 8192, attributes: 8, flags: 0 }, 'ok'],
      ['shared, aligned', { address: GPA, size: 4096, attributes: 0, flags: 0 }, 'ok'],
      ['beyond 2^53 together', { address: 2 ** 53 - 4096, size: 8192, attributes: 8, flags: 0 }, 'ok'],
    ];
  for (const [name, args, want] of cases) {
    it(`${name}: ${want}`, () => {
      const outcome = (arg: Record<string, number | bigint>): string => {
        const { host, vm } = plainSlotVm();
        const e = thrown(() => host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', arg));
        return e instanceof SyscallError ? `${e.code}: ${e.reason}` : e === undefined ? 'ok' : String(e);
      };
      const asNumbers = outcome({ ...args });
      const asBigints = outcome({
        address: BigInt(args.address),
        size: BigInt(args.size),
        attributes: BigInt(args.attributes),
        flags: BigInt(args.flags),
      });
      expect(asNumbers.split(':')[0]).toBe(want);
      expect(asNumbers).toBe(asBigints);
    });
  }
  it('attributes PRIVATE on a VM without private memory: EINVAL (kvm_supported_mem_attributes() is 0)', () => {
    const host = createHost({ kernel: 'v6.16' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_DEFAULT_VM);
    for (const attributes of [8, 8n]) {
      const e = thrown(() =>
        host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: 0, size: 4096, attributes, flags: 0 }),
      );
      expect((e as SyscallError).code).toBe('EINVAL');
      expect((e as SyscallError).reason).toContain('attributes 0x8 not supported');
    }
  });
});

/**
 * Provenance paths read as the kernel's call chain, and the PG_uptodate record names the function
 * that set the bit. virt/kvm/guest_memfd.c (6.11..6.19): kvm_gmem_get_pfn() calls
 * kvm_gmem_prepare_folio(), which clears the page and on success calls kvm_gmem_mark_prepared() =
 * folio_mark_uptodate(); kvm_gmem_populate() calls kvm_gmem_mark_prepared() once the vendor
 * callback succeeded. arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region() calls kvm_gmem_populate().
 */
describe('provenance paths are kernel call chains (virt/kvm/guest_memfd.c)', () => {
  it('founding case: the pre-fault path ends kvm_gmem_prepare_folio > kvm_gmem_mark_prepared > folio_mark_uptodate', () => {
    const td = buildTd('tdx-dev-2024-07+eexist');
    td.host.ioctl(td.vcpu, 'KVM_PRE_FAULT_MEMORY', { gpa: 0x1000, size: 4096, flags: 0 });
    const e = syscallError(() => initMemRegion(td, 0x1000, 1, 1));
    expect(e.code).toBe('EEXIST');
    expect(e.explanation).toContain(
      '(KVM_PRE_FAULT_MEMORY > kvm_arch_vcpu_pre_fault_memory > kvm_tdp_map_page > kvm_gmem_get_pfn > ' +
        'kvm_gmem_prepare_folio > kvm_gmem_mark_prepared > folio_mark_uptodate)',
    );
  });

  it('v6.16: a second KVM_TDX_INIT_MEM_REGION names the populate that marked the folio prepared', () => {
    const td = buildTd('v6.16'); // upstream 6.16 maps the page itself (tdx_gmem_post_populate)
    const first = td.host.seq + 1;
    initMemRegion(td, 0x1000, 1, 1);
    const e = syscallError(() => initMemRegion(td, 0x1000, 1, 1));
    expect(e.code).toBe('EEXIST');
    expect(e.explanation).toContain(
      `call #${first} (KVM_MEMORY_ENCRYPT_OP > tdx_vcpu_init_mem_region > kvm_gmem_populate > kvm_gmem_mark_prepared > folio_mark_uptodate)`,
    );
  });

  it('Tracer.hereIn(callees, leaf) records what nested within() calls would', () => {
    const t = new Tracer();
    t.begin('KVM_RUN');
    t.enter('kvm_gmem_get_pfn');
    const a = t.hereIn(['kvm_gmem_prepare_folio', 'kvm_gmem_mark_prepared'], 'folio_mark_uptodate');
    const b = t.within('kvm_gmem_prepare_folio', () =>
      t.within('kvm_gmem_mark_prepared', () => t.here('folio_mark_uptodate')),
    );
    t.leave();
    expect(b).toBe(a);
    expect(a.path).toBe(
      'KVM_RUN > kvm_gmem_get_pfn > kvm_gmem_prepare_folio > kvm_gmem_mark_prepared > folio_mark_uptodate',
    );
  });
});

describe('uaccess field(): the number fast path truncates exactly as a C assignment', () => {
  const values: unknown[] = [
    0,
    -0,
    1,
    255,
    256,
    0xffff,
    0x10000,
    0xffffffff,
    2 ** 32,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 64,
  ];
  values.push(-1, -(2 ** 53 - 1), true, false, null, undefined, 5n, -1n, 2n ** 64n + 3n);
  const cases = [
    [u64, 64],
    [u32, 32],
    [u16, 16],
    [u8, 8],
  ] as const;
  it('u64/u32/u16/u8 of numbers, bigints, booleans and missing fields', () => {
    for (const v of values) {
      // C: (uN)v, i.e. v mod 2^N; a missing field reads as 0 (zeroed struct).
      const big =
        v === undefined || v === null ? 0n : typeof v === 'boolean' ? BigInt(v) : BigInt(v as number);
      for (const [read, bits] of cases)
        expect(read({ f: v }, 'f'), `${String(v)} as u${bits}`).toBe(BigInt.asUintN(bits, big));
    }
    expect(s64({ f: 2 ** 53 - 1 }, 'f')).toBe(2n ** 53n - 1n);
    expect(s64({ f: -1 }, 'f')).toBe(-1n);
    expect(scalar(2 ** 40, 'arg')).toBe(2n ** 40n);
    expect(scalar(-1, 'arg')).toBe(2n ** 64n - 1n);
  });
  it('a non-integer number is -EFAULT, as copy_from_user of a bad struct', () => {
    for (const v of [1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const e = thrown(() => u64({ f: v }, 'f'));
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).code).toBe('EFAULT');
    }
  });
});

describe('mm: mmap(2) check order (arch/x86/kernel/sys_x86_64.c sys_mmap, mm/mmap.c ksys_mmap_pgoff, do_mmap)', () => {
  const host = createHost({ kernel: 'v6.16' });
  const errno = (fn: () => unknown): string | undefined => (thrown(fn) as SyscallError | undefined)?.code;
  it('ksys_mmap_pgoff(): fget() of a bad fd (-EBADF) comes before do_mmap()’s len and MAP_TYPE checks', () => {
    expect(errno(() => host.mmap({ length: 0, prot: 3, flags: uapi.MAP_SHARED, fd: 99 }))).toBe('EBADF');
    expect(errno(() => host.mmap({ length: 4096, prot: 3, flags: 0, fd: 99 }))).toBe('EBADF');
  });
  it('sys_mmap(): an unaligned offset is -EINVAL before the fd is looked up', () => {
    expect(errno(() => host.mmap({ length: 4096, prot: 3, flags: uapi.MAP_SHARED, fd: 99, offset: 1 }))).toBe(
      'EINVAL',
    );
  });
  it('do_mmap(): len 0 is -EINVAL for an anonymous mapping, whose fd is ignored', () => {
    const flags = uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS;
    expect(errno(() => host.mmap({ length: 0, prot: 3, flags }))).toBe('EINVAL');
    expect(typeof host.mmap({ length: 4096, prot: 3, flags, fd: 99 })).toBe('number');
  });
});

describe('an unanswered conversion request is part of the attribute explanation', () => {
  // A guest's KVM_HC_MAP_GPA_RANGE exit asks the VMM to convert; until KVM_SET_MEMORY_ATTRIBUTES
  // gives the range what it asked, a mismatch names the request. Once answered (or asked for the
  // state the gfn already has) it is not mentioned.
  function snpAsked(kernel: string) {
    const s = snpVm(kernel, { size: 8 * 4096 });
    const { host, vm } = s;
    const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
    s.enc('KVM_SEV_SNP_LAUNCH_UPDATE', { gfn_start: 0, uaddr: s.hva, len: 4096, type: 1 });
    s.enc('KVM_SEV_SNP_LAUNCH_FINISH', {});
    host.ioctl(vm, 'KVM_ENABLE_CAP', {
      cap: uapi.KVM_CAP_EXIT_HYPERCALL,
      args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
    });
    const g = host.guest(vcpu);
    g.load([
      { op: 'map_gpa', via: 'psc_ghcb', gpa: 0x2000, npages: 2, private: false },
      { op: 'read', gpa: 0x3000, length: 4, shared: true },
    ]);
    host.ioctl(vcpu, 'KVM_RUN'); // the page-state change exit
    const asked = host.seq;
    host.kvmRun(vcpu).hypercall!.ret = 0n;
    return { host, vm, vcpu, asked };
  }

  it('the shared read of a gfn the guest asked to be shared, never converted, names the request [v6.16]', () => {
    const { host, vcpu, asked } = snpAsked('v6.16');
    const e = thrown(() => host.ioctl(vcpu, 'KVM_RUN')) as SyscallError;
    expect(e.code).toBe('EFAULT');
    expect(e.explanation).toContain(
      `the guest asked for it to be shared at call #${asked} (KVM_RUN > KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE), and no KVM_SET_MEMORY_ATTRIBUTES followed`,
    );
  });

  it('answered: the VMM converted the range, the read goes through [v6.16]', () => {
    const { host, vm, vcpu } = snpAsked('v6.16');
    host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: 0x2000, size: 0x2000, attributes: 0, flags: 0 });
    expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
    expect(host.guest(vcpu).results[1]?.data).toEqual(new Uint8Array(4));
  });
});

describe('the function that refuses a private fault with no memslot, by release', () => {
  // 6.10 moved the check into kvm_handle_noslot_fault(); in 6.8 kvm_faultin_pfn_private() refuses
  // the NULL slot (kvm_slot_can_be_private). Either way a memory-fault exit and -EFAULT.
  it.each([
    ['v6.8', 'kvm_faultin_pfn_private'],
    ['v6.11', 'kvm_handle_noslot_fault'],
    ['v7.0', 'kvm_handle_noslot_fault'],
  ])('%s: %s', (kernel, fn) => {
    const { host, vm, vcpu } = plainSlotVm(kernel);
    host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
      address: 2 * GPA,
      size: 4096,
      attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
      flags: 0,
    });
    host.guest(vcpu).load([{ op: 'read', gpa: 2 * GPA, length: 4 }]);
    const e = thrown(() => host.ioctl(vcpu, 'KVM_RUN')) as SyscallError;
    expect(e.code).toBe('EFAULT');
    expect(e.message).toContain(`${fn}: private access to gfn 0x${(2 * GFN).toString(16)} with no memslot`);
  });
});
