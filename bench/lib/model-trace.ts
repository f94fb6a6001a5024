/**
 * The conversion trace's model side (bench/conversion-trace.ts says what it does and counts), as
 * a generator that runs one guest program (a batch of pages) per step: the bench drives it to the
 * end with its probes between batches; bench/lib/interleave.ts drives two builds of the model
 * batch by batch, side by side. The model comes in as `api` (its createHost and uapi), so that a
 * harness can run a build of another revision.
 */
import type { createHost, GuestOp, uapi } from '../../src/index.js';
import type { GmemFile } from '../../src/kernel/kvm/guest-memfd.js';
import type { VmFile } from '../../src/kernel/kvm/vm.js';

/** What the trace needs of a build of the model. */
export interface ModelApi {
  createHost: typeof createHost;
  uapi: typeof uapi;
}

export const GUEST_PAGES = 2 ** 28; // 1 TiB
export const BASE_GPA = 2 ** 32;
export const OPS_PER_PAGE = 7;
export const SYSCALLS_PER_PAGE = 6;

/** The i-th scattered page: an odd multiplier is a bijection modulo 2^28. */
export const pageOf = (i: number): number => (Math.imul(i, 0x9e3779b1) >>> 0) % GUEST_PAGES;

export interface TraceResult {
  ops: number;
  checksum: number;
  syscalls: number;
  extents: number;
  /** Time of the ordering at the end (inside the last step). */
  orderSeconds: number;
}

/**
 * The trace over `pages` pages, `batch` per guest program; `distinct` < pages: the i-th page is
 * pageOf(i % distinct), so pages are revisited (--hot). Each next() runs one batch; the last one
 * also orders the page layers (asks the extent counts) and returns the result.
 */
export function* modelTraceSteps(
  api: ModelApi,
  pages: number,
  invariants: boolean,
  distinct: number,
  batch: number,
): Generator<void, TraceResult, undefined> {
  const { uapi: K } = api;
  const host = api.createHost({ kernel: 'v6.16', invariants });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', K.KVM_X86_SW_PROTECTED_VM);
  const size = GUEST_PAGES * 4096;
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags: 0 });
  const hva = host.mmap({
    length: size,
    prot: 3,
    flags: K.MAP_PRIVATE | K.MAP_ANONYMOUS | K.MAP_NORESERVE,
  });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 1,
    flags: K.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: BASE_GPA,
    memory_size: size,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vm, 'KVM_ENABLE_CAP', {
    cap: K.KVM_CAP_EXIT_HYPERCALL,
    args: [1 << K.KVM_HC_MAP_GPA_RANGE],
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: BASE_GPA,
    size,
    attributes: K.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  const guest = host.guest(vcpu);
  const run = host.kvmRun(vcpu);
  const punch = K.FALLOC_FL_KEEP_SIZE | K.FALLOC_FL_PUNCH_HOLE;
  const encrypted = BigInt(K.KVM_MAP_GPA_RANGE_ENCRYPTED);
  const attr = { address: 0, size: 4096, attributes: 0, flags: 0 };
  const payload = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  let checksum = 0;
  const seq0 = host.seq;
  // The guest's code: one set of operation objects, whose gpas are rewritten for every batch (a
  // guest reuses its instructions), so the harness allocates nothing per page. The model reads a
  // program's operations only while it runs, and each batch's program runs to its end.
  type AccessOp = Extract<GuestOp, { op: 'read' | 'write' | 'map_gpa' }>;
  const code: AccessOp[] = [];
  for (let i = 0; i < Math.min(batch, pages); i++)
    code.push(
      { op: 'write', gpa: 0, data: payload },
      { op: 'map_gpa', gpa: 0, npages: 1, private: false },
      { op: 'read', gpa: 0, length: 8 },
      { op: 'map_gpa', gpa: 0, npages: 1, private: true },
      { op: 'read', gpa: 0, length: 8 },
    );
  for (let b = 0; b < pages; b += batch) {
    const n = Math.min(batch, pages - b);
    for (let i = 0; i < n; i++) {
      const gpa = BASE_GPA + pageOf((b + i) % distinct) * 4096;
      for (let k = i * 5; k < i * 5 + 5; k++) code[k]!.gpa = gpa;
    }
    const ops = n * 5 === code.length ? code : code.slice(0, n * 5);
    guest.load(ops);
    for (;;) {
      host.ioctl(vcpu, 'KVM_RUN');
      if (run.exit_reason !== K.KVM_EXIT_HYPERCALL) break;
      // QEMU kvm_convert_memory(): attributes first, then discard the side no longer used.
      const hc = run.hypercall!;
      const gpa = Number(hc.args[0]);
      const toPrivate = (hc.args[2] & encrypted) !== 0n;
      attr.address = gpa;
      attr.attributes = toPrivate ? K.KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
      host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', attr);
      if (!toPrivate) host.fallocate(gmem, punch, gpa - BASE_GPA, 4096);
      else host.madvise(hva + (gpa - BASE_GPA), 4096, K.MADV_DONTNEED);
      hc.ret = 0n;
    }
    for (let i = 0; i < n; i++)
      checksum += guest.results[i * 5 + 4]!.data![0]! + guest.results[i * 5 + 2]!.data![0]!;
    if (b + batch < pages) yield;
  }
  // The page layers (PointExtentMap) defer tree inserts until something needs order; ask for the
  // extent counts so that deferred work is paid inside the timed region too (and time it apart).
  const t0 = performance.now();
  const v = (host.fds.lookup(vm) as VmFile).vm;
  const extents =
    v.attributes.size + v.mmu.sptes.size + (host.fds.lookup(gmem) as GmemFile).inode.folios.size;
  const orderSeconds = (performance.now() - t0) / 1000;
  return { ops: pages * OPS_PER_PAGE, checksum, syscalls: host.seq - seq0, extents, orderSeconds };
}
