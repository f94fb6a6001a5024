/**
 * Scale benchmark: a 4 TiB guest_memfd on a SW_PROTECTED VM, bound in 64 memslots, PRIVATE set on
 * every other 2 MiB range (1M attribute extents), a few thousand scattered fallocate / punch-hole
 * ranges. Prints wall time per phase, peak RSS and the number of extents in each map; the same phases
 * on a 4 GiB guest, measured in the same run, are the baseline the ratios refer to. Runs with the
 * safety invariants on and off.
 *
 * Memory figures: peak RSS (maxRSS, includes the runtime and GC slack), and the heap still in use
 * after a full GC once the phases are done (the model's retained state; needs --expose-gc, which the
 * children get). Bytes per attribute extent = growth over the 4 GiB baseline / attribute extents.
 *
 *   npx tsx bench/scale-4tib.ts            (target: peak RSS under 200 MB = 190.7 MiB)
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import '../src/kernel/arch/register.js';
import { createHost, type Host } from '../src/kernel/host.js';
import type { GmemFile } from '../src/kernel/kvm/guest-memfd.js';
import type { VmFile } from '../src/kernel/kvm/vm.js';
import { uapi } from '../src/uapi/index.js';

const SZ_2M = 2 ** 21;
const SLOTS = 64;
const SCATTERED = 4096; // fallocate'd ranges; every other one is punched again
const RANGE = 16 * 4096; // 64 KiB each

interface Result {
  label: string;
  phases: Array<[string, number]>;
  rssMb: number;
  /** Heap used after a full GC at the end (MiB), or -1 without --expose-gc. */
  heapMb: number;
  extents: Record<string, number>;
}

/** Deterministic scatter (a 32-bit LCG): no randomness in the project, even in benchmarks. */
function* scatter(n: number, limitPages: number): Generator<number> {
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const page = Math.floor((x / 2 ** 32) * (limitPages - RANGE / 4096));
    yield page * 4096;
  }
}

/** Peak RSS in MiB (maxRSS is in KiB). */
function rssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Heap in use after a full GC, in MiB; -1 if gc() is not exposed. */
function retainedHeapMb(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return -1;
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const MIB_PER_MB = 1e6 / 2 ** 20;

function run(label: string, guestBytes: number, invariants: boolean): Result {
  const phases: Array<[string, number]> = [];
  const time = (name: string, fn: () => void): void => {
    const t0 = performance.now();
    fn();
    phases.push([name, performance.now() - t0]);
  };
  const host: Host = createHost({ kernel: 'v6.18', platform: 'generic', invariants });
  let vmFd = -1;
  let gmemFd = -1;
  time('create VM + guest_memfd', () => {
    const kvm = host.open('/dev/kvm');
    vmFd = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SW_PROTECTED_VM);
    gmemFd = host.ioctl(vmFd, 'KVM_CREATE_GUEST_MEMFD', { size: guestBytes, flags: 0 });
  });
  const slotBytes = guestBytes / SLOTS;
  time(`bind ${SLOTS} memslots`, () => {
    for (let i = 0; i < SLOTS; i++) {
      host.ioctl(vmFd, 'KVM_SET_USER_MEMORY_REGION2', {
        slot: i,
        flags: uapi.KVM_MEM_GUEST_MEMFD,
        guest_phys_addr: i * slotBytes,
        memory_size: slotBytes,
        userspace_addr: 0,
        guest_memfd: gmemFd,
        guest_memfd_offset: i * slotBytes,
      });
    }
  });
  const ranges = guestBytes / SZ_2M / 2;
  time(`PRIVATE on every other 2 MiB (${ranges} ioctls)`, () => {
    const arg = { address: 0, size: SZ_2M, attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0 };
    for (let i = 0; i < ranges; i++) {
      arg.address = 2 * i * SZ_2M;
      host.ioctl(vmFd, 'KVM_SET_MEMORY_ATTRIBUTES', arg);
    }
  });
  const offsets = [...scatter(SCATTERED, guestBytes / 4096)];
  time(`fallocate ${SCATTERED} scattered 64 KiB ranges`, () => {
    for (const off of offsets) host.fallocate(gmemFd, uapi.FALLOC_FL_KEEP_SIZE, off, RANGE);
  });
  time(`punch ${SCATTERED / 2} of them`, () => {
    const mode = uapi.FALLOC_FL_KEEP_SIZE | uapi.FALLOC_FL_PUNCH_HOLE;
    for (let i = 0; i < offsets.length; i += 2) host.fallocate(gmemFd, mode, offsets[i]!, RANGE);
  });
  const gmem = host.fds.lookup(gmemFd) as GmemFile;
  const vm = (host.fds.lookup(vmFd) as VmFile).vm;
  const rss = rssMb();
  return {
    label,
    phases,
    rssMb: rss,
    heapMb: retainedHeapMb(),
    extents: {
      'memory attributes': vm.attributes.size,
      'guest_memfd folios': gmem.inode.folios.size,
      'guest_memfd bindings': gmem.bindings.size,
      memslots: vm.memslots.count,
      SPTEs: vm.mmu.sptes.size,
    },
  };
}

function print(r: Result, base?: Result): void {
  console.log(`\n== ${r.label}`);
  for (const [i, [name, ms]] of r.phases.entries()) {
    const ratio = base ? `  x${(ms / Math.max(base.phases[i]![1], 0.001)).toFixed(1)} vs baseline` : '';
    console.log(`  ${name.padEnd(48)} ${ms.toFixed(1).padStart(9)} ms${ratio}`);
  }
  const total = r.phases.reduce((s, [, ms]) => s + ms, 0);
  const baseTotal = base ? base.phases.reduce((s, [, ms]) => s + ms, 0) : 0;
  console.log(
    `  ${'total'.padEnd(48)} ${total.toFixed(1).padStart(9)} ms${base ? `  x${(total / baseTotal).toFixed(1)}` : ''}`,
  );
  for (const [k, v] of Object.entries(r.extents)) {
    const ratio = base ? `  x${(v / Math.max(base.extents[k]!, 1)).toFixed(1)}` : '';
    console.log(`  extents: ${k.padEnd(38)} ${String(v).padStart(9)}${ratio}`);
  }
  const rssRatio = base ? `  x${(r.rssMb / base.rssMb).toFixed(2)} vs baseline` : '';
  console.log(
    `  ${'peak RSS (maxRSS)'.padEnd(48)} ${r.rssMb.toFixed(1).padStart(9)} MiB (${(r.rssMb / MIB_PER_MB).toFixed(1)} MB)${rssRatio}`,
  );
  if (r.heapMb >= 0) {
    const heapRatio = base && base.heapMb > 0 ? `  x${(r.heapMb / base.heapMb).toFixed(2)} vs baseline` : '';
    console.log(
      `  ${'heap retained after full GC'.padEnd(48)} ${r.heapMb.toFixed(1).padStart(9)} MiB${heapRatio}`,
    );
  }
}

const GiB = 2 ** 30;

/** Each configuration runs in its own process, so its peak RSS is its own. */
if (process.argv[2] === 'child') {
  const bytes = Number(process.argv[3]);
  const invariants = process.argv[4] === 'on';
  const r = run(String(process.argv[5]), bytes, invariants);
  process.stdout.write(`${JSON.stringify(r)}\n`);
} else {
  const self = fileURLToPath(import.meta.url);
  const child = (label: string, bytes: number, inv: boolean): Result => {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, '--expose-gc', self, 'child', String(bytes), inv ? 'on' : 'off', label],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      },
    );
    return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Result;
  };
  console.log(
    `node ${process.version}; each configuration in a fresh process (peak RSS includes the runtime)`,
  );
  let peak = 0;
  for (const invariants of [false, true]) {
    const inv = invariants ? 'invariants on' : 'invariants off';
    const base = child(`baseline: 4 GiB guest, ${inv}`, 4 * GiB, invariants);
    print(base);
    const big = child(`4 TiB guest, ${inv}`, 4 * 1024 * GiB, invariants);
    print(big, base);
    const extents = Math.max(big.extents['memory attributes']! - base.extents['memory attributes']!, 1);
    const perExtent = ((big.rssMb - base.rssMb) * 2 ** 20) / extents;
    console.log(`  ~${perExtent.toFixed(0)} bytes of peak RSS growth per attribute extent`);
    if (big.heapMb >= 0 && base.heapMb >= 0) {
      const heapPer = ((big.heapMb - base.heapMb) * 2 ** 20) / extents;
      console.log(`  ~${heapPer.toFixed(0)} bytes of retained heap per attribute extent`);
    }
    peak = Math.max(peak, big.rssMb);
  }
  const peakMb = peak / MIB_PER_MB;
  console.log(
    `\nworst 4 TiB peak RSS ${peak.toFixed(1)} MiB = ${peakMb.toFixed(1)} MB (target < 200 MB): ${peakMb < 200 ? 'OK' : 'OVER'}`,
  );
}
