/**
 * Port of tools/testing/selftests/kvm/pre_fault_memory_test.c.
 *
 * Two versions of the selftest exist: the 6.11-era one (three calls, each looped with
 * `while (ret >= 0 ? range.size : errno == EINTR)`) and the newest one (torvalds 3d5e4894), which
 * runs a delete_slot_worker thread that deletes memslot 10 while the pre-fault runs and recreates it
 * afterwards. The thread is replaced by the three interleavings it can produce, made deterministic:
 * the deletion completes before the pre-fault, is in flight during it (host.raceMemslotUpdate:
 * KVM_MEMSLOT_INVALID published, synchronize_srcu() pending), or happens after it. The newest
 * version is generated for kernels with 3ccbf6f47098 (-EAGAIN on the race, 6.18+), the 6.11-era one
 * for kernels with KVM_PRE_FAULT_MEMORY before that. Expected values come from the selftest: final
 * range.size and errno per call, the progress invariant `(range.size < prev) ^ (ret < 0)`, and the
 * guest reading every page.
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, type Host, uapi } from '../../src/index.js';
import {
  type KvmVm,
  kvm_check_cap,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  type SysResult,
  SZ_2M,
  sys,
  vm_create_barebones_type,
  vm_mem_region_delete,
  vm_mem_set_private,
  vm_userspace_mem_region_add,
  vm_vcpu_add,
} from './lib/kvm_util.js';

const TEST_SIZE = SZ_2M + PAGE_SIZE;
const TEST_NPAGES = TEST_SIZE / PAGE_SIZE;
const TEST_SLOT = 10;
/** vm->max_gfn for a 4-level x86 guest on a MAXPHYADDR-52 host (the model's kvm_mmu_max_gfn). */
const MAX_GFN = 2 ** 40 - 1;

interface Range {
  gpa: number | bigint;
  size: number | bigint;
  flags: number;
}

/** __vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range). */
function preFault(host: Host, vcpu: number, range: Range): SysResult<number> {
  return sys(() => host.ioctl(vcpu, 'KVM_PRE_FAULT_MEMORY', range));
}

/** What the race does to the slot around one pre-fault call. */
type Interleaving = 'deleted-before' | 'deleting-during' | 'deleted-after';

interface Ctx {
  host: Host;
  vm: KvmVm;
  vcpu: number;
  gpa: number;
  priv: boolean;
}

/** The worker's vm_userspace_mem_region_add() of the same slot (a new guest_memfd if private). */
function recreateSlot(c: Ctx): void {
  vm_userspace_mem_region_add(c.vm, c.gpa, TEST_SLOT, TEST_NPAGES, c.priv ? uapi.KVM_MEM_GUEST_MEMFD : 0);
}

/** The progress invariant the selftest asserts after every call. */
function expectProgressInvariant(prev: number, range: Range, r: SysResult<number>): void {
  expect(Number(range.size) < prev !== !r.ok).toBe(true);
  if (!r.ok) expect(Number(range.size)).toBe(prev);
}

/** pre_fault_memory() of the newest selftest, with the worker thread as an interleaving. */
function preFaultMemoryNewest(
  c: Ctx,
  offset: number,
  size: number,
  expectedLeft: number,
  how: Interleaving,
): SysResult<number>[] {
  const range: Range = { gpa: c.gpa + offset, size, flags: 0 };
  const rets: SysResult<number>[] = [];
  let slotRecreated = false;
  if (how === 'deleted-before') vm_mem_region_delete(c.vm, TEST_SLOT);
  if (how === 'deleting-during') c.host.raceMemslotUpdate(c.vm.fd, TEST_SLOT);
  let r: SysResult<number>;
  for (;;) {
    const prev = Number(range.size);
    r = preFault(c.host, c.vcpu, range);
    rets.push(r);
    expectProgressInvariant(prev, range, r);
    if (!r.ok && r.code === 'EINTR') continue;
    if (!slotRecreated) {
      // The worker finishes its deletion (if still pending) and recreates the slot; joined.
      if (how !== 'deleted-before') vm_mem_region_delete(c.vm, TEST_SLOT);
      recreateSlot(c);
      slotRecreated = true;
      if (Number(range.size) !== 0) continue;
    }
    if (Number(range.size) === 0 || !r.ok) break;
  }
  expect(Number(range.size)).toBe(expectedLeft);
  if (!expectedLeft) expect(r.ok).toBe(true);
  else expect(!r.ok && r.code).toBe('ENOENT');
  return rets;
}

/** pre_fault_memory() of the 6.11-era selftest: `while (ret >= 0 ? range.size : errno == EINTR)`. */
function preFaultMemory611(c: Ctx, offset: number, size: number, expectedLeft: number): void {
  const range: Range = { gpa: c.gpa + offset, size, flags: 0 };
  let r: SysResult<number>;
  do {
    const prev = Number(range.size);
    r = preFault(c.host, c.vcpu, range);
    expectProgressInvariant(prev, range, r);
  } while (r.ok ? Number(range.size) !== 0 : r.code === 'EINTR');
  expect(Number(range.size)).toBe(expectedLeft);
  if (!expectedLeft) expect(r.ok).toBe(true);
  else expect(!r.ok && r.code).toBe('ENOENT');
}

/** __test_pre_fault_memory() setup: slot 10 near the top of the guest physical space. */
function setup(kernel: string, vmType: number, priv: boolean): Ctx {
  const host = newHost({ kernel, platform: 'generic' });
  const vm = vm_create_barebones_type(host, vmType);
  const vcpu = vm_vcpu_add(vm, 0);
  const gpa = Math.floor(((MAX_GFN - TEST_NPAGES) * PAGE_SIZE) / SZ_2M) * SZ_2M;
  vm_userspace_mem_region_add(vm, gpa, TEST_SLOT, TEST_NPAGES, priv ? uapi.KVM_MEM_GUEST_MEMFD : 0);
  if (priv) vm_mem_set_private(vm, gpa, TEST_SIZE);
  return { host, vm, vcpu, gpa, priv };
}

/** guest_code(): read one u64 from each of the TEST_NPAGES pages, then GUEST_DONE (HLT here). */
function runGuest(c: Ctx): void {
  const g = c.host.guest(c.vcpu);
  g.load(
    Array.from({ length: TEST_NPAGES }, (_, i) => ({
      op: 'read' as const,
      gpa: c.gpa + i * PAGE_SIZE,
      length: 8,
    })),
  );
  expect(c.host.ioctl(c.vcpu, 'KVM_RUN')).toBe(0);
  expect(c.host.kvmRun(c.vcpu).exit_reason).toBe(uapi.KVM_EXIT_HLT);
  expect(g.done).toBe(true);
  // Not asserted by the selftest: every page the guest sees was cleared (anon memory, or a
  // guest_memfd folio zeroed before it was mapped).
  for (let i = 0; i < TEST_NPAGES; i++) expect(g.results[i]!.data).toEqual(new Uint8Array(8));
}

const CASES: ReadonlyArray<{ name: string; type: number; priv: boolean }> = [
  { name: 'vm_type 0, shared', type: uapi.KVM_X86_DEFAULT_VM, priv: false },
  { name: 'KVM_X86_SW_PROTECTED_VM, shared', type: uapi.KVM_X86_SW_PROTECTED_VM, priv: false },
  { name: 'KVM_X86_SW_PROTECTED_VM, private', type: uapi.KVM_X86_SW_PROTECTED_VM, priv: true },
];

const withPreFault = allProfiles().filter((p) => p.mmu.preFault);
const newest = withPreFault.filter((p) => p.mmu.preFaultEagain);
const era611 = withPreFault.filter((p) => !p.mmu.preFaultEagain);

describe('pre_fault_memory_test.c main(): TEST_REQUIRE(KVM_CAP_PRE_FAULT_MEMORY)', () => {
  for (const p of allProfiles()) {
    it(`KVM_CAP_PRE_FAULT_MEMORY is ${p.mmu.preFault ? 1 : 0} [${p.name}]`, () => {
      const host = newHost({ kernel: p.name, platform: 'generic' });
      expect(kvm_check_cap(host, uapi.KVM_CAP_PRE_FAULT_MEMORY)).toBe(p.mmu.preFault ? 1 : 0);
    });
  }
});

describe('pre_fault_memory_test.c, newest version (memslot deletion race; kernels with 3ccbf6f47098)', () => {
  for (const p of newest) {
    for (const c of CASES) {
      for (const how of ['deleted-before', 'deleting-during', 'deleted-after'] as const) {
        it(`pre_fault_memory_test.c __test_pre_fault_memory(${c.name}), slot ${how} [${p.name}]`, () => {
          const ctx = setup(p.name, c.type, c.priv);
          const first = preFaultMemoryNewest(ctx, 0, SZ_2M, 0, how);
          // What each interleaving returns first, from kvm_mmu_faultin_pfn() / kvm_tdp_map_page():
          // no slot: shared -> RET_PF_EMULATE -> ENOENT, private -> kvm_handle_noslot_fault EFAULT;
          // slot KVM_MEMSLOT_INVALID during a prefetch fault -> EAGAIN; after: success.
          const expectFirst =
            how === 'deleted-before'
              ? c.priv
                ? 'EFAULT'
                : 'ENOENT'
              : how === 'deleting-during'
                ? 'EAGAIN'
                : 'ok';
          expect(first[0]!.ok ? 'ok' : first[0]!.ok === false && first[0]!.code).toBe(expectFirst);
          preFaultMemoryNewest(ctx, SZ_2M, PAGE_SIZE * 2, PAGE_SIZE, how);
          preFaultMemoryNewest(ctx, TEST_SIZE, PAGE_SIZE, PAGE_SIZE, how);
          runGuest(ctx);
          kvm_vm_free(ctx.vm);
        });
      }
    }
  }
});

describe('pre_fault_memory_test.c, 6.11-era version (no deletion race; kernels before 3ccbf6f47098)', () => {
  for (const p of era611) {
    for (const c of CASES) {
      it(`pre_fault_memory_test.c __test_pre_fault_memory(${c.name}) [${p.name}]`, () => {
        const ctx = setup(p.name, c.type, c.priv);
        preFaultMemory611(ctx, 0, SZ_2M, 0);
        preFaultMemory611(ctx, SZ_2M, PAGE_SIZE * 2, PAGE_SIZE);
        preFaultMemory611(ctx, TEST_SIZE, PAGE_SIZE, PAGE_SIZE);
        runGuest(ctx);
        kvm_vm_free(ctx.vm);
      });
    }
  }
});

/** Validation and copy-back rules of kvm_vcpu_pre_fault_memory() the selftest relies on. */
describe('kvm_vcpu_pre_fault_memory() checks and copy-back (virt/kvm/kvm_main.c)', () => {
  for (const p of withPreFault) {
    it(`flags, size 0, alignment, wrap -> EINVAL with the struct copied back unchanged [${p.name}]`, () => {
      const c = setup(p.name, uapi.KVM_X86_DEFAULT_VM, false);
      const bad: Range[] = [
        { gpa: c.gpa, size: PAGE_SIZE, flags: 1 },
        { gpa: c.gpa, size: 0, flags: 0 },
        { gpa: c.gpa + 1, size: PAGE_SIZE, flags: 0 },
        { gpa: c.gpa, size: PAGE_SIZE + 1, flags: 0 },
        { gpa: (1n << 64n) - 4096n, size: 8192, flags: 0 },
      ];
      for (const r of bad) {
        const before = { ...r };
        const res = preFault(c.host, c.vcpu, r);
        expect(!res.ok && res.code).toBe('EINVAL');
        expect(BigInt(r.gpa)).toBe(BigInt(before.gpa));
        expect(BigInt(r.size)).toBe(BigInt(before.size));
      }
      // padding[5] is not checked: a non-zero padding word is accepted.
      const ok = { gpa: c.gpa, size: PAGE_SIZE, flags: 0, padding: [1, 2, 3, 4, 5] };
      expect(preFault(c.host, c.vcpu, ok).ok).toBe(true);
      expect(ok.size).toBe(0);
      expect(ok.gpa).toBe(c.gpa + PAGE_SIZE);
    });

    it(`a pending signal before any progress -> EINTR, range unchanged; after progress -> 0 [${p.name}]`, () => {
      const c = setup(p.name, uapi.KVM_X86_DEFAULT_VM, false);
      c.host.signalPending = true;
      const r: Range = { gpa: c.gpa, size: 2 * PAGE_SIZE, flags: 0 };
      const res = preFault(c.host, c.vcpu, r);
      expect(!res.ok && res.code).toBe('EINTR');
      expect(r).toEqual({ gpa: c.gpa, size: 2 * PAGE_SIZE, flags: 0 });
      c.host.signalPending = false;
      expect(preFault(c.host, c.vcpu, r).ok).toBe(true);
      expect(r.size).toBe(0);
    });
  }

  for (const p of era611) {
    it(`a memslot deletion in flight livelocks the pre-fault until a signal (before 3ccbf6f47098) [${p.name}]`, () => {
      // kvm_tdp_map_page() loops on RET_PF_RETRY for a KVM_MEMSLOT_INVALID slot while holding SRCU,
      // and the deletion's synchronize_srcu() waits for it: only a signal ends the ioctl.
      const c = setup(p.name, uapi.KVM_X86_DEFAULT_VM, false);
      c.host.raceMemslotUpdate(c.vm.fd, TEST_SLOT);
      const r: Range = { gpa: c.gpa, size: PAGE_SIZE, flags: 0 };
      const res = preFault(c.host, c.vcpu, r);
      expect(!res.ok && res.code).toBe('EINTR');
      expect(r.size).toBe(PAGE_SIZE);
    });
  }

  for (const p of newest) {
    it(`a racing deletion after progress is success with the range advanced (3ccbf6f47098) [${p.name}]`, () => {
      // Pages before the slot being deleted are mapped, then -EAGAIN at the slot: 0 is returned
      // because progress was made, and the next call reports EAGAIN with nothing done.
      const c = setup(p.name, uapi.KVM_X86_DEFAULT_VM, false);
      c.vm.host.ioctl(c.vm.fd, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: 11,
        flags: 0,
        guest_phys_addr: c.gpa - PAGE_SIZE,
        memory_size: PAGE_SIZE,
        userspace_addr: c.host.mmap({
          length: PAGE_SIZE,
          prot: 3,
          flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
        }),
      });
      c.host.raceMemslotUpdate(c.vm.fd, TEST_SLOT);
      const r: Range = { gpa: c.gpa - PAGE_SIZE, size: 2 * PAGE_SIZE, flags: 0 };
      expect(preFault(c.host, c.vcpu, r).ok).toBe(true);
      expect(r).toEqual({ gpa: c.gpa, size: PAGE_SIZE, flags: 0 });
      const again = preFault(c.host, c.vcpu, r);
      expect(!again.ok && again.code).toBe('EAGAIN');
      expect(r).toEqual({ gpa: c.gpa, size: PAGE_SIZE, flags: 0 });
    });
  }
});
