/**
 * Port of tools/testing/selftests/kvm/x86/private_mem_conversions_test.c (torvalds 5171573c).
 *
 * The guest code (guest_test_explicit_conversion, guest_test_punch_hole, guest_code) is translated
 * into a guest op program: memset -> write, memcmp_g -> read whose bytes the test checks,
 * kvm_hypercall_map_gpa_range -> map_gpa with the selftest's own flag bits in a2 (KVM passes a2
 * through unchecked), GUEST_SYNC -> a HLT whose host-side handling is the selftest's SYNC case,
 * GUEST_DONE -> the end of the program. The host side is __test_mem_conversions() and
 * handle_exit_hypercall(); the vCPU threads are run round-robin, one KVM_RUN each.
 * Generated for every profile (KVM_X86_SW_PROTECTED_VM and KVM_CAP_EXIT_HYPERCALL exist from
 * v6.8), with several vCPUs and memslots sharing one guest_memfd as the -n / -m options do.
 */
import { describe, expect, it } from 'vitest';
import { allProfiles, type GuestOp, type Host, uapi } from '../../src/index.js';
import {
  type KvmVm,
  kvm_vm_free,
  newHost,
  PAGE_SIZE,
  SZ_2M,
  SZ_4G,
  type VmMemBackingSrc,
  vm_create_barebones_type,
  vm_create_guest_memfd,
  vm_guest_mem_fallocate,
  vm_mem_add,
  vm_set_memory_attributes,
  vm_userspace_mem_region_add,
  vm_vcpu_add,
} from './lib/kvm_util.js';

const BASE_DATA_SLOT = 10;
const BASE_DATA_GPA = SZ_4G;
const PER_CPU_DATA_SIZE = SZ_2M + PAGE_SIZE;

// Arbitrary values, KVM doesn't care about the attribute flags.
const MAP_GPA_SET_ATTRIBUTES = 1 << 0;
const MAP_GPA_SHARED = 1 << 1;
const MAP_GPA_DO_FALLOCATE = 1 << 2;

const SYNC_SHARED = 0;
const SYNC_PRIVATE = 1;

interface Sync {
  kind: typeof SYNC_SHARED | typeof SYNC_PRIVATE;
  gpa: number;
  size: number;
  current: number;
  next: number;
}

/** The guest program and what it asserts (GUEST_ASSERT of memcmp_g and of hypercall returns). */
class GuestCode {
  readonly ops: GuestOp[] = [];
  readonly syncs = new Map<number, Sync>();
  readonly reads: Array<{ op: number; gpa: number; pattern: number }> = [];
  readonly hypercalls: number[] = [];

  memset(gpa: number, p: number, size: number): void {
    this.ops.push({ op: 'write', gpa, data: new Uint8Array(size).fill(p) });
  }
  memcmp_g(gpa: number, p: number, size: number): void {
    this.reads.push({ op: this.ops.length, gpa, pattern: p });
    this.ops.push({ op: 'read', gpa, length: size });
  }
  /** kvm_hypercall_map_gpa_range(gpa, size, flags): GUEST_ASSERT(!ret). */
  mapGpa(gpa: number, size: number, flags: number): void {
    this.hypercalls.push(this.ops.length);
    this.ops.push({ op: 'map_gpa', gpa, npages: size / PAGE_SIZE, attrs: flags });
  }
  guest_map_mem(gpa: number, size: number, mapShared: boolean, doFallocate: boolean): void {
    let flags = MAP_GPA_SET_ATTRIBUTES;
    if (mapShared) flags |= MAP_GPA_SHARED;
    if (doFallocate) flags |= MAP_GPA_DO_FALLOCATE;
    this.mapGpa(gpa, size, flags);
  }
  guest_map_shared(gpa: number, size: number, doFallocate: boolean): void {
    this.guest_map_mem(gpa, size, true, doFallocate);
  }
  guest_map_private(gpa: number, size: number, doFallocate: boolean): void {
    this.guest_map_mem(gpa, size, false, doFallocate);
  }
  sync(s: Sync): void {
    this.syncs.set(this.ops.length, s);
    this.ops.push({ op: 'hlt' });
  }
  guest_sync_shared(gpa: number, size: number, current: number, next: number): void {
    this.sync({ kind: SYNC_SHARED, gpa, size, current, next });
  }
  guest_sync_private(gpa: number, size: number, pattern: number): void {
    this.sync({ kind: SYNC_PRIVATE, gpa, size, current: pattern, next: 0 });
  }
  /** guest_punch_hole(): "mapping" memory shared via fallocate() is done via PUNCH_HOLE. */
  guest_punch_hole(gpa: number, size: number): void {
    this.mapGpa(gpa, size, MAP_GPA_SHARED | MAP_GPA_DO_FALLOCATE);
  }
}

const TEST_RANGES: ReadonlyArray<{ offset: number; size: number }> = [
  { offset: 0, size: PAGE_SIZE },
  { offset: 0, size: SZ_2M },
  { offset: PAGE_SIZE, size: PAGE_SIZE },
  { offset: PAGE_SIZE, size: SZ_2M },
  { offset: SZ_2M, size: PAGE_SIZE },
];

function guest_test_explicit_conversion(g: GuestCode, base: number, doFallocate: boolean): void {
  const def_p = 0xaa;
  const init_p = 0xcc;
  // Memory should be shared by default.
  g.memset(base, def_p, PER_CPU_DATA_SIZE);
  g.memcmp_g(base, def_p, PER_CPU_DATA_SIZE);
  g.guest_sync_shared(base, PER_CPU_DATA_SIZE, def_p, init_p);
  g.memcmp_g(base, init_p, PER_CPU_DATA_SIZE);
  for (const r of TEST_RANGES) {
    const gpa = base + r.offset;
    const size = r.size;
    const [p1, p2, p3, p4] = [0x11, 0x22, 0x33, 0x44];
    g.memset(gpa, p1, size);
    g.guest_map_private(gpa, size, doFallocate);
    if (size > PAGE_SIZE) {
      g.memset(gpa, p2, PAGE_SIZE);
    } else {
      g.memset(gpa, p2, size);
      g.guest_sync_private(gpa, size, p1);
      g.memcmp_g(gpa, p2, size);
      if (gpa > base) g.memcmp_g(base, init_p, gpa - base);
      if (gpa + size < base + PER_CPU_DATA_SIZE)
        g.memcmp_g(gpa + size, init_p, base + PER_CPU_DATA_SIZE - (gpa + size));
      for (let j = 0; j < size; j += PAGE_SIZE) {
        if ((j / PAGE_SIZE) & 1) {
          g.guest_map_shared(gpa + j, PAGE_SIZE, doFallocate);
          g.guest_sync_shared(gpa + j, PAGE_SIZE, p1, p3);
          g.memcmp_g(gpa + j, p3, PAGE_SIZE);
        } else {
          g.guest_sync_private(gpa + j, PAGE_SIZE, p1);
        }
      }
    }
    // skip:
    g.guest_map_shared(gpa, size, doFallocate);
    g.memset(gpa, p3, size);
    g.guest_sync_shared(gpa, size, p3, p4);
    g.memcmp_g(gpa, p4, size);
    g.memset(gpa, init_p, size);
    g.guest_map_shared(base, PER_CPU_DATA_SIZE, true);
  }
}

function guest_test_punch_hole(g: GuestCode, base: number, precise: boolean): void {
  const init_p = 0xcc;
  g.guest_map_private(base, PER_CPU_DATA_SIZE, false);
  for (const r of TEST_RANGES) {
    const gpa = base + r.offset;
    const size = r.size;
    g.guest_punch_hole(base, PER_CPU_DATA_SIZE);
    if (precise) {
      g.memset(gpa, init_p, size);
      g.memcmp_g(gpa, init_p, size);
    } else {
      g.memset(base, init_p, PER_CPU_DATA_SIZE);
      g.memcmp_g(base, init_p, PER_CPU_DATA_SIZE);
    }
    // Punch a hole at the target range: guest reads succeed and return zeroes.
    g.guest_punch_hole(gpa, size);
    g.memcmp_g(gpa, 0, size);
  }
}

function guest_code(base: number): GuestCode {
  const g = new GuestCode();
  guest_test_explicit_conversion(g, base, false);
  guest_test_explicit_conversion(g, base, true);
  guest_test_punch_hole(g, base, false);
  guest_test_punch_hole(g, base, true);
  return g; // GUEST_DONE: the end of the program
}

/** Index of the first byte that is not `p`, or -1 (a plain loop: these buffers are megabytes). */
function firstMismatch(data: Uint8Array, p: number): number {
  for (let i = 0; i < data.length; i++) if (data[i] !== p) return i;
  return -1;
}

/** addr_gpa2hva(): the region's userspace mapping. */
function gpa2hva(vm: KvmVm, gpa: number): number {
  for (const r of vm.regions.values()) if (gpa >= r.gpa && gpa < r.gpa + r.size) return r.hva + (gpa - r.gpa);
  throw new Error(`No vm physical memory at 0x${gpa.toString(16)}`);
}

/** handle_exit_hypercall(). */
function handleExitHypercall(vm: KvmVm, host: Host, vcpu: number): void {
  const run = host.kvmRun(vcpu);
  const hc = run.hypercall!;
  expect(hc.nr).toBe(BigInt(uapi.KVM_HC_MAP_GPA_RANGE));
  const gpa = Number(hc.args[0]);
  const size = Number(hc.args[1]) * PAGE_SIZE;
  const flags = Number(hc.args[2]);
  const mapShared = (flags & MAP_GPA_SHARED) !== 0;
  if (flags & MAP_GPA_DO_FALLOCATE) vm_guest_mem_fallocate(vm, gpa, size, mapShared);
  if (flags & MAP_GPA_SET_ATTRIBUTES)
    vm_set_memory_attributes(vm, gpa, size, mapShared ? 0 : uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE);
  hc.ret = 0n;
}

/** The SYNC ucall: in all cases the host observes the shared data; for SHARED it writes the next pattern. */
function handleSync(vm: KvmVm, host: Host, s: Sync): void {
  for (let i = 0; i < s.size; i += PAGE_SIZE) {
    const n = Math.min(PAGE_SIZE, s.size - i);
    const hva = gpa2hva(vm, s.gpa + i);
    const bytes = host.memory.read(hva, n);
    expect(firstMismatch(bytes, s.current)).toBe(-1);
    if (s.kind === SYNC_SHARED) host.memory.write(hva, new Uint8Array(n).fill(s.next));
  }
}

/** test_mem_conversions(src_type = anonymous, nr_vcpus, nr_memslots). */
function test_mem_conversions(
  kernel: string,
  nrVcpus: number,
  nrMemslots: number,
  src: VmMemBackingSrc = 'anonymous',
): { syncs: number; exits: number } {
  const host = newHost({ kernel, platform: 'generic' });
  const alignment = SZ_2M;
  const perCpuSize = Math.ceil(PER_CPU_DATA_SIZE / alignment) * alignment;
  const memfdSize = perCpuSize * nrVcpus;
  const slotSize = memfdSize / nrMemslots;
  expect(slotSize * nrMemslots).toBe(memfdSize);
  const vm = vm_create_barebones_type(host, uapi.KVM_X86_SW_PROTECTED_VM);
  vm_userspace_mem_region_add(vm, 0, 0, 512, 0); // __vm_create()'s slot 0 (code, stack, page tables)
  const vcpus = Array.from({ length: nrVcpus }, (_, i) => vm_vcpu_add(vm, i));
  host.ioctl(vm.fd, 'KVM_ENABLE_CAP', {
    cap: uapi.KVM_CAP_EXIT_HYPERCALL,
    args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
  });
  const memfd = vm_create_guest_memfd(vm, memfdSize, 0);
  for (let i = 0; i < nrMemslots; i++)
    vm_mem_add(
      vm,
      BASE_DATA_GPA + slotSize * i,
      BASE_DATA_SLOT + i,
      slotSize / PAGE_SIZE,
      uapi.KVM_MEM_GUEST_MEMFD,
      memfd,
      slotSize * i,
      src,
    );
  const programs = vcpus.map((vcpu, i) => {
    const g = guest_code(BASE_DATA_GPA + i * perCpuSize);
    host.guest(vcpu).load(g.ops);
    return g;
  });
  let syncs = 0;
  let exits = 0;
  const done = vcpus.map(() => false);
  while (done.some((d) => !d)) {
    vcpus.forEach((vcpu, i) => {
      if (done[i]) return;
      const g = host.guest(vcpu);
      expect(host.ioctl(vcpu, 'KVM_RUN')).toBe(0);
      exits++;
      const run = host.kvmRun(vcpu);
      if (run.exit_reason === uapi.KVM_EXIT_HYPERCALL) {
        handleExitHypercall(vm, host, vcpu);
        return;
      }
      // Every other exit is a ucall (SYNC at a HLT, or DONE at the end of the program).
      expect(run.exit_reason).toBe(uapi.KVM_EXIT_HLT);
      const sync = programs[i]!.syncs.get(g.pc - 1);
      if (sync) {
        handleSync(vm, host, sync);
        syncs++;
      } else {
        expect(g.done).toBe(true);
        done[i] = true;
      }
    });
  }
  // The guest's own assertions: every memcmp_g saw its pattern, every hypercall returned 0.
  vcpus.forEach((vcpu, i) => {
    const g = host.guest(vcpu);
    for (const r of programs[i]!.reads) {
      const data = g.results[r.op]!.data!;
      const bad = firstMismatch(data, r.pattern);
      if (bad >= 0)
        expect.fail(
          `vCPU ${i}: guest expected 0x${r.pattern.toString(16)} at gpa 0x${(r.gpa + bad).toString(16)}`,
        );
    }
    for (const h of programs[i]!.hypercalls) expect(g.results[h]!.ret).toBe(0n);
  });
  kvm_vm_free(vm);
  // The guest_memfd holds a reference to its VM: allocate and free after closing the VM fd.
  expect(host.fallocate(memfd, uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE, 0, memfdSize)).toBe(0);
  expect(host.fallocate(memfd, uapi.FALLOC_FL_KEEP_SIZE, 0, memfdSize)).toBe(0);
  host.close(memfd);
  return { syncs, exits };
}

const SHAPES: ReadonlyArray<[number, number]> = [
  [1, 1],
  [1, 2],
  [2, 1],
  [2, 2],
  [4, 2],
];

describe('private_mem_conversions_test.c', () => {
  for (const p of allProfiles()) {
    for (const [n, m] of SHAPES) {
      it(`private_mem_conversions_test.c test_mem_conversions(-n ${n} -m ${m}) [${p.name}]`, () => {
        const r = test_mem_conversions(p.name, n, m);
        // Per vCPU and explicit-conversion run: 1 initial SYNC_SHARED, 3 per single-page range
        // (SYNC_PRIVATE, the per-page loop's SYNC_PRIVATE, the final SYNC_SHARED), 1 per 2 MiB range.
        expect(r.syncs).toBe(n * 2 * (1 + 3 * 3 + 2 * 1));
        expect(r.exits).toBeGreaterThan(r.syncs);
      });
    }
  }
  // -s: the shared side backed by shmem (a memfd mapped MAP_SHARED) or by THP (anonymous with
  // MADV_HUGEPAGE); alignment max(SZ_2M, backing page size) is 2 MiB for both, as for anonymous.
  for (const src of ['shmem', 'anonymous_thp'] as const)
    for (const kernel of ['v6.8', 'v6.11', 'v6.18', 'v7.0'])
      it(`private_mem_conversions_test.c test_mem_conversions(-s ${src} -n 2 -m 2) [${kernel}]`, () => {
        const r = test_mem_conversions(kernel, 2, 2, src);
        expect(r.syncs).toBe(2 * 2 * (1 + 3 * 3 + 2 * 1));
      });
});
