/**
 * Conversion trace: a SW_PROTECTED guest of 1 TiB converts and touches a million scattered pages,
 * with QEMU's conversion handling (kvm_convert_memory: KVM_SET_MEMORY_ATTRIBUTES, then
 * fallocate(PUNCH_HOLE | KEEP_SIZE) of the guest_memfd range when converting to shared).
 *
 * Per page (one guest program per batch of pages):
 *   guest: write 8 bytes (private) ; map_gpa(page, shared) -> KVM_EXIT_HYPERCALL
 *   VMM:   KVM_SET_MEMORY_ATTRIBUTES(shared) + PUNCH_HOLE
 *   guest: read 8 bytes (shared)   ; map_gpa(page, private) -> KVM_EXIT_HYPERCALL
 *   VMM:   KVM_SET_MEMORY_ATTRIBUTES(private)
 *   guest: read 8 bytes (private, a fresh zeroed folio)
 * Page operations counted: 3 guest accesses + 2 attribute changes + 1 punch-hole = 6 per page.
 *
 * Baseline, measured in the same run: the same page-state changes applied directly to three bare
 * ExtentMaps (attributes, SPTEs, page cache), i.e. the data-structure cost without the model.
 *
 *   npx tsx bench/conversion-trace.ts [pages=1048576] [--skip-invariants-on]
 */
import { createHost, uapi } from '../src/index.js';
import { ExtentMap } from '../src/ranges/extent-map.js';

const PAGES = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 1 << 20);
const GUEST_PAGES = 2 ** 28; // 1 TiB
const BASE_GPA = 2 ** 32;
const BATCH = 4096;
const OPS_PER_PAGE = 6;

/** The i-th scattered page: an odd multiplier is a bijection modulo 2^28. */
const pageOf = (i: number): number => (Math.imul(i, 0x9e3779b1) >>> 0) % GUEST_PAGES;

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

function runModel(pages: number, invariants: boolean): { seconds: number; ops: number; checksum: number } {
  const host = createHost({ kernel: 'v6.16', invariants });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
  const size = GUEST_PAGES * 4096;
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size, flags: 0 });
  // 1 TiB does not fit above the default mmap base: place it like a VMM's MAP_FIXED reservation.
  const hva = host.mmap({
    length: size,
    prot: 3,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_FIXED | uapi.MAP_NORESERVE,
    addr: 0x1000_0000_0000,
  });
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: 1,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: BASE_GPA,
    memory_size: size,
    userspace_addr: hva,
    guest_memfd: gmem,
    guest_memfd_offset: 0,
  });
  host.ioctl(vm, 'KVM_ENABLE_CAP', {
    cap: uapi.KVM_CAP_EXIT_HYPERCALL,
    args: [1 << uapi.KVM_HC_MAP_GPA_RANGE],
  });
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: BASE_GPA,
    size,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  const guest = host.guest(vcpu);
  const run = host.kvmRun(vcpu);
  const punch = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;
  const attr = { address: 0, size: 4096, attributes: 0, flags: 0 };
  const payload = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  let checksum = 0;
  const t0 = performance.now();
  for (let b = 0; b < pages; b += BATCH) {
    const n = Math.min(BATCH, pages - b);
    const ops: import('../src/index.js').GuestOp[] = [];
    for (let i = 0; i < n; i++) {
      const gpa = BASE_GPA + pageOf(b + i) * 4096;
      ops.push(
        { op: 'write', gpa, data: payload },
        { op: 'map_gpa', gpa, npages: 1, private: false },
        { op: 'read', gpa, length: 8 },
        { op: 'map_gpa', gpa, npages: 1, private: true },
        { op: 'read', gpa, length: 8 },
      );
    }
    guest.load(ops);
    for (;;) {
      host.ioctl(vcpu, 'KVM_RUN');
      if (run.exit_reason !== uapi.KVM_EXIT_HYPERCALL) break;
      // QEMU kvm_convert_memory(): attributes first, then discard the side no longer used.
      const hc = run.hypercall!;
      const gpa = Number(hc.args[0]);
      const toPrivate = (hc.args[2] & BigInt(uapi.KVM_MAP_GPA_RANGE_ENCRYPTED)) !== 0n;
      attr.address = gpa;
      attr.attributes = toPrivate ? uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
      host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', attr);
      if (!toPrivate) host.fallocate(gmem, punch, gpa - BASE_GPA, 4096);
      hc.ret = 0n;
    }
    for (let i = 0; i < n; i++)
      checksum += guest.results[i * 5 + 4]!.data![0]! + guest.results[i * 5 + 2]!.data![0]!;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, ops: pages * OPS_PER_PAGE, checksum };
}

/** The same page-state changes on bare ExtentMaps: the data-structure floor. */
function runBaseline(pages: number): { seconds: number; ops: number } {
  const attrs = new ExtentMap<number>();
  const sptes = new ExtentMap<number>();
  const cache = new ExtentMap<number>();
  attrs.set(0, GUEST_PAGES, 8);
  const t0 = performance.now();
  for (let i = 0; i < pages; i++) {
    const g = pageOf(i);
    cache.set(g, g + 1, 1); // private write: folio allocated
    sptes.set(g, g + 1, 1); // private SPTE
    attrs.set(g, g + 1, 0); // to shared
    sptes.set(g, g + 1, undefined); // zap
    cache.set(g, g + 1, undefined); // punch-hole
    sptes.set(g, g + 1, 2); // shared SPTE
    attrs.set(g, g + 1, 8); // to private
    sptes.set(g, g + 1, undefined); // zap
    cache.set(g, g + 1, 1); // fresh folio
    sptes.set(g, g + 1, 1); // private SPTE
  }
  return { seconds: (performance.now() - t0) / 1000, ops: pages * OPS_PER_PAGE };
}

function fmt(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

const rss0 = rssMiB();
console.log(
  `conversion-trace: ${fmt(PAGES)} scattered pages of a 1 TiB SW_PROTECTED guest, ${OPS_PER_PAGE} page ops each`,
);
const base = runBaseline(PAGES);
const baseRate = base.ops / base.seconds;
console.log(
  `baseline (bare ExtentMaps)      ${fmt(baseRate).padStart(12)} page ops/s  (${base.seconds.toFixed(2)} s)`,
);
const off = runModel(PAGES, false);
const offRate = off.ops / off.seconds;
console.log(
  `model, invariants off          ${fmt(offRate).padStart(12)} page ops/s  (${off.seconds.toFixed(2)} s, ${(offRate / baseRate).toFixed(3)}x baseline)`,
);
if (!process.argv.includes('--skip-invariants-on')) {
  const on = runModel(PAGES, true);
  const onRate = on.ops / on.seconds;
  console.log(
    `model, invariants on           ${fmt(onRate).padStart(12)} page ops/s  (${on.seconds.toFixed(2)} s, ${(onRate / baseRate).toFixed(3)}x baseline, ${(onRate / offRate).toFixed(2)}x invariants off)`,
  );
}
if (off.checksum !== PAGES * 0) console.log(`unexpected guest data: checksum ${off.checksum}`);
const peak = process.resourceUsage().maxRSS / 1024;
console.log(`peak RSS ${fmt(peak)} MiB (start ${fmt(rss0)} MiB)`);
console.log(
  `target: >= 1,000,000 page ops/s with invariants off: ${offRate >= 1e6 ? 'met' : 'NOT met'} (${fmt(offRate)})`,
);
