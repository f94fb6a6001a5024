/**
 * Property: kvm_gmem_populate()'s run path gives exactly what the per-page path gives.
 *
 * Why the run path exists: the kernel's kvm_gmem_populate() (virt/kvm/guest_memfd.c) loops page by
 * page, and KVM_TDX_INIT_MEM_REGION loops over single-page populate calls (arch/x86/kvm/vmx/tdx.c).
 * Page by page, a 2 GiB launch image costs half a million folio, RMP or S-EPT updates and hash calls,
 * so the model also has a run path (guest-memfd.ts populateRun / kvmGmemPopulateRun, with the
 * vendors' postPopulateRun in sev.ts and tdx-vm.ts) that does a run of pages in one go and falls back
 * to the per-page path for the page a run cannot take. It is an optimisation only: nothing a
 * caller or a later step can see may depend on it. setPopulateRuns(false) turns it off.
 *
 * What is compared: the same random operation sequence (seeded fast-check; populate calls with
 * good and bad sources and page types, fallocate and punch hole, attribute flips, pending signals,
 * memory_failure, KVM_PRE_FAULT_MEMORY, munmap / MAP_FIXED remaps of the source, host writes to the
 * source, memslot races, closing the second guest_memfd, SNP_LAUNCH_FINISH / TDX_FINALIZE_VM) is
 * replayed with runs off and on, on every SNP and every TDX profile, and the two replays must agree
 * on:
 * - every call: its return value or errno and kernel reason (or host fault, or invariant
 *   violation), and the struct the kernel copied back (SNP: gfn_start / uaddr / len and the
 *   firmware error; TDX: gpa / source_addr / nr_pages and hw_error);
 * - per guest_memfd page: the RMP entry (SNP), the folio (content, up to date, hwpoison,
 *   provenance; not its allocation serial `gen`, which a run shares) and its bytes;
 * - per gfn: the SPTE (private, slot, pfn delta, whether it maps the folio's current generation,
 *   provenance), the S-EPT leaf and the pre-mapped mark (TDX);
 * - SNP: the launch digest; TDX: SEAMCALL counts, nr_premapped, FINALIZE_VM's result and the MRTD;
 * - the VMM's source memory, page by page (SNP writes a rejected CPUID page back to it).
 *
 * The run path must also really be taken: a run's pages share one folio generation, so the folio
 * ExtentMaps hold fewer extents with runs on. Profiles whose kvm_gmem_get_folio() hands out zeroed
 * folios (6.8, 6.11-rc1) have no run path (populateRunLength), nor has TDX INIT_MEM_REGION on the
 * 2024 dev tree (pre-fault first, then page by page) or with the noClearOnPrepare bug: there the
 * counts must be equal.
 *
 * Also replayed on deliberately broken profiles (ProfileBugs: stale mappings after punch hole or an
 * attribute change, uncleared pages, host mappings of private pages), where the invariant
 * violations they cause must be the same too. PROP_SEED changes the seeds; PROP_SHRINK=1 shrinks
 * a failing sequence to a small one.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  allProfiles,
  createHost,
  getProfile,
  type Host,
  HostFault,
  InvariantViolation,
  type KernelProfile,
  type ProfileBugs,
  SyscallError,
  uapi,
} from '../../src/index.js';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpGuestContext } from '../../src/kernel/arch/sev/report.js';
import { tdxVmOf } from '../../src/kernel/arch/tdx/index.js';
import { type GmemFile, setPopulateRuns } from '../../src/kernel/kvm/guest-memfd.js';
import type { VmFile } from '../../src/kernel/kvm/vm.js';
import { folioView, prov } from '../state-views.js';

const PAGE = 4096;
const BASE_SEED = Number(process.env.PROP_SEED ?? 20240713);
const RW = uapi.PROT_READ | uapi.PROT_WRITE;
const ANON_PRIVATE = uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS;
const ANON_SHARED = uapi.MAP_SHARED | uapi.MAP_ANONYMOUS;

afterEach(() => setPopulateRuns(true));

const SNP_KERNELS = allProfiles()
  .filter((p) => p.vmTypes.snp)
  .map((p) => p.name);
const TDX_KERNELS = allProfiles()
  .filter((p) => p.vmTypes.tdx)
  .map((p) => p.name);
/** The profiles whose populate can take a run (guest-memfd.ts populateRunLength). */
const hasRunPath = (p: KernelProfile) =>
  p.gmem.preparation !== 'zero-on-get-folio' && p.gmem.preparation !== 'coco-hooks';

// ------------------------------------------------------------------------------------------ helpers

const hash = (b: Uint8Array | null) =>
  b === null ? null : createHash('sha1').update(b).digest('hex').slice(0, 16);
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));

/** What a call did: its value, or the errno and kernel reason, a host fault, an invariant violation. */
function outcome(fn: () => unknown): unknown {
  try {
    const r = fn();
    return { ok: r };
  } catch (e) {
    if (e instanceof SyscallError) return { errno: e.code, why: e.message };
    if (e instanceof HostFault) return { fault: e.message };
    if (e instanceof InvariantViolation) return { invariant: e.message };
    throw e; // a plain JS exception escaping the model is a defect
  }
}

/** The SPTE of a gfn; `current` says whether it maps the generation of the folio now in the file. */
function spteView(host: Host, vmFd: number, gfn: number): unknown {
  const s = (host.fds.lookup(vmFd) as VmFile).vm.mmu.sptes.get(gfn);
  if (s === undefined) return undefined;
  const folio = s.inode?.folios.get(gfn + (s.pfnDelta ?? 0) - s.inode.pfnBase);
  return {
    private: s.private,
    slot: s.slot?.id,
    pfnDelta: s.pfnDelta,
    current: s.gen === undefined ? 'no-gen' : s.gen === folio?.gen,
    since: prov(s.since),
  };
}

/** The VMM's source memory, one hash per page (null where it cannot be read). */
function sourceView(host: Host, ranges: [number, number][]): unknown[] {
  const out: unknown[] = [];
  for (const [addr, npages] of ranges) {
    for (let i = 0; i < npages; i++) {
      try {
        out.push(hash(host.memory.read(addr + i * PAGE, PAGE)));
      } catch (e) {
        if (!(e instanceof HostFault)) throw e;
        out.push(null);
      }
    }
  }
  return out;
}

/** Fill `npages` pages at addr with distinct page contents, leaving every `zeroEvery`th page zero. */
function fillSource(host: Host, addr: number, npages: number, zeroEvery: number, salt: number): void {
  const page = new Uint8Array(PAGE);
  for (let i = 0; i < npages; i++) {
    if (i % zeroEvery === 1) continue;
    page.fill((i * salt) % 251 || 7);
    page[0] = i & 0xff;
    page[1] = i >> 8;
    host.memory.write(addr + i * PAGE, page);
  }
}

const inodeOf = (host: Host, fd: number) => (host.fds.lookup(fd) as GmemFile).inode;

/** A profile with deliberately broken kernel behaviour (ProfileBugs), under its own name. */
function withBugs(kernel: string, bugs: ProfileBugs): KernelProfile {
  return { ...getProfile(kernel)!, name: `${kernel}+bugs:${Object.keys(bugs).join(',')}`, bugs };
}

interface Replay {
  /** Everything compared between the two replays. */
  seen: Record<string, unknown>;
  /** Folio extents over the guest_memfd files at the end: fewer when runs shared a folio generation. */
  folioExtents: number;
}

/** Replay `ops` with runs off and on; fail on the first difference; return the extent counts. */
function compare<Op>(replay: (ops: Op[], runs: boolean) => Replay, ops: Op[]): [number, number] {
  const perPage = replay(ops, false);
  const withRuns = replay(ops, true);
  for (const key of Object.keys(perPage.seen)) {
    // A cheap string comparison first; toEqual only to show where a difference is.
    if (json(withRuns.seen[key]) !== json(perPage.seen[key]))
      expect({ [key]: withRuns.seen[key] }).toEqual({ [key]: perPage.seen[key] });
  }
  return [perPage.folioExtents, withRuns.folioExtents];
}

/** Run the property for one profile; returns how many sequences had fewer folio extents with runs. */
function check<Op>(
  arb: fc.Arbitrary<Op[]>,
  replay: (ops: Op[], runs: boolean) => Replay,
  seed: number,
  numRuns: number,
): { fewer: number; more: number } {
  let fewer = 0;
  let more = 0;
  fc.assert(
    fc.property(arb, (ops) => {
      const [a, b] = compare(replay, ops);
      if (b < a) fewer++;
      if (b > a) more++;
    }),
    // Shrinking replays a failing sequence hundreds of times: on request only (PROP_SHRINK=1).
    { numRuns, seed, endOnFailure: process.env.PROP_SHRINK === undefined },
  );
  return { fewer, more };
}

// ------------------------------------------------------------------------------ shared host ops

/** Operations both replays mix in between their populate calls. */
type HostOp =
  | { k: 'fallocate'; second: boolean; off: number; len: number; punch: boolean }
  | { k: 'attributes'; gfn: number; n: number; priv: boolean }
  | { k: 'memory-failure'; off: number }
  | { k: 'prefault'; gfn: number; n: number }
  | { k: 'munmap'; page: number; n: number }
  | { k: 'remap'; page: number; n: number; readOnly: boolean }
  | { k: 'host-write'; page: number; off: number; byte: number }
  | { k: 'race'; slot: number }
  | { k: 'close-second' };

/** Sizes and weights for generating HostOps against one replay's layout. */
interface HostOpLimits {
  /** Pages of the first guest_memfd (fallocate offsets and memory_failure). */
  gmemPages: number;
  /** gfns KVM_SET_MEMORY_ATTRIBUTES may start at. */
  attrGfns: number;
  /** gfns KVM_PRE_FAULT_MEMORY may start at. */
  prefaultGfns: number;
  /** Pages of the buffer munmap / remap hit, and of the one host-write hits. */
  bufPages: number;
  writePages: number;
  weights: { prefault: number; remap: number; hostWrite: number; race: number; close: number };
}

/** The HostOp generators both replays mix in, in one order (so seeds keep their sequences). */
function hostOpArbs(l: HostOpLimits): fc.WeightedArbitrary<HostOp>[] {
  return [
    {
      weight: 8,
      arbitrary: fc.record({
        k: fc.constant('fallocate' as const),
        second: fc.nat(4).map((n) => n === 0),
        off: fc.nat(l.gmemPages - 1),
        len: fc.integer({ min: 1, max: 20 }),
        punch: fc.nat(4).map((n) => n < 3),
      }),
    },
    {
      weight: 8,
      arbitrary: fc.record({
        k: fc.constant('attributes' as const),
        gfn: fc.nat(l.attrGfns - 1),
        n: fc.integer({ min: 1, max: 30 }),
        priv: fc.nat(4).map((n) => n < 3),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({ k: fc.constant('memory-failure' as const), off: fc.nat(l.gmemPages - 1) }),
    },
    {
      weight: l.weights.prefault,
      arbitrary: fc.record({
        k: fc.constant('prefault' as const),
        gfn: fc.nat(l.prefaultGfns - 1),
        n: fc.integer({ min: 1, max: 10 }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        k: fc.constant('munmap' as const),
        page: fc.nat(l.bufPages - 1),
        n: fc.integer({ min: 1, max: 3 }),
      }),
    },
    {
      weight: l.weights.remap,
      arbitrary: fc.record({
        k: fc.constant('remap' as const),
        page: fc.nat(l.bufPages - 1),
        n: fc.integer({ min: 1, max: 4 }),
        readOnly: fc.boolean(),
      }),
    },
    {
      weight: l.weights.hostWrite,
      arbitrary: fc.record({
        k: fc.constant('host-write' as const),
        page: fc.nat(l.writePages - 1),
        off: fc.nat(PAGE - 4),
        byte: fc.nat(255),
      }),
    },
    { weight: l.weights.race, arbitrary: fc.record({ k: fc.constant('race' as const), slot: fc.nat(2) }) },
    { weight: l.weights.close, arbitrary: fc.constant({ k: 'close-second' as const }) },
  ];
}

/** KVM_SET_USER_MEMORY_REGION2 of a guest_memfd slot: `n` pages at gfn, file pages from pgoff. */
function gmemSlot(
  host: Host,
  vm: number,
  id: number,
  gfn: number,
  n: number,
  addr: number,
  fd: number,
  pgoff: number,
): void {
  host.ioctl(vm, 'KVM_SET_USER_MEMORY_REGION2', {
    slot: id,
    flags: uapi.KVM_MEM_GUEST_MEMFD,
    guest_phys_addr: gfn * PAGE,
    memory_size: n * PAGE,
    userspace_addr: addr,
    guest_memfd: fd,
    guest_memfd_offset: pgoff * PAGE,
  });
}

/** The fds and buffers a HostOp works on: munmap / remap hit `buf`, host-write `written`. */
interface HostOpTarget {
  host: Host;
  vm: number;
  vcpu: number;
  gmem: number;
  gmem2: number;
  buf: number;
  written: number;
}

/** Run one HostOp; what it returned or how it failed. */
function hostOp(t: HostOpTarget, op: HostOp): unknown {
  const { host, vm, buf } = t;
  switch (op.k) {
    case 'fallocate': {
      const fd = op.second ? t.gmem2 : t.gmem;
      const off = op.second ? op.off % 64 : op.off;
      const mode = op.punch ? uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE : uapi.FALLOC_FL_KEEP_SIZE;
      return outcome(() => host.fallocate(fd, mode, off * PAGE, op.len * PAGE));
    }
    case 'attributes':
      return outcome(() =>
        host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
          address: op.gfn * PAGE,
          size: op.n * PAGE,
          attributes: op.priv ? uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
          flags: 0,
        }),
      );
    case 'memory-failure':
      return outcome(() => host.memoryFailure(t.gmem, op.off * PAGE));
    case 'prefault': {
      const arg = { gpa: op.gfn * PAGE, size: op.n * PAGE, flags: 0 };
      return [outcome(() => host.ioctl(t.vcpu, 'KVM_PRE_FAULT_MEMORY', arg)), { ...arg }];
    }
    case 'munmap':
      return outcome(() => host.munmap(buf + op.page * PAGE, op.n * PAGE));
    case 'remap':
      return outcome(() =>
        host.mmap({
          length: op.n * PAGE,
          prot: op.readOnly ? uapi.PROT_READ : RW,
          flags: ANON_PRIVATE | uapi.MAP_FIXED,
          addr: buf + op.page * PAGE,
        }),
      );
    case 'host-write':
      return outcome(() =>
        host.memory.write(t.written + op.page * PAGE + op.off, Uint8Array.of(op.byte, 1, 2)),
      );
    case 'race':
      return outcome(() => host.raceMemslotUpdate(vm, op.slot));
    case 'close-second':
      return outcome(() => host.close(t.gmem2));
  }
}

// ---------------------------------------------------------------------------------------------- SNP

type SnpOp =
  | {
      k: 'update';
      gfn: number;
      npages: number;
      type: number;
      src: number;
      srcPage: number;
      misalign: boolean;
      kvmFd: boolean;
    }
  | { k: 'update-signal'; gfn: number }
  | HostOp
  | { k: 'finish' };

/** Guest layout: slot 0 gfn 0..255 (file 1 from 0), slot 1 gfn 256..383 (file 1 from 300), slot 2 gfn 384..447 (file 2). */
const SNP_GFNS = 448;
/** Sources: 0 slot 0's userspace memory (256 pages), 1 a buffer with holes (64), 2 more data (16), 3 read-only, 4 write-only, 5 a guest_memfd mapping (6.18+), 6 none. */
const SNP_SOURCES = 7;
const SNP_TYPES: number[] = [
  ...Array<number>(4).fill(uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL),
  ...Array<number>(2).fill(uapi.KVM_SEV_SNP_PAGE_TYPE_ZERO),
  ...Array<number>(2).fill(uapi.KVM_SEV_SNP_PAGE_TYPE_UNMEASURED),
  uapi.KVM_SEV_SNP_PAGE_TYPE_SECRETS,
  uapi.KVM_SEV_SNP_PAGE_TYPE_CPUID,
];

const snpGfn = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 259 }) },
  { weight: 3, arbitrary: fc.integer({ min: 250, max: 389 }) },
  { weight: 1, arbitrary: fc.integer({ min: 380, max: 449 }) },
);
const snpOp: fc.Arbitrary<SnpOp> = fc.oneof(
  {
    weight: 55,
    arbitrary: fc.record({
      k: fc.constant('update' as const),
      gfn: snpGfn,
      npages: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 60 })),
      type: fc.constantFrom(...SNP_TYPES),
      src: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(0, 1, 2) },
        { weight: 3, arbitrary: fc.nat(SNP_SOURCES - 1) },
      ),
      srcPage: fc.nat(255),
      misalign: fc.nat(11).map((n) => n === 0),
      kvmFd: fc.nat(24).map((n) => n === 0),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('update-signal' as const), gfn: fc.nat(259) }) },
  ...hostOpArbs({
    gmemPages: 512,
    attrGfns: 460,
    prefaultGfns: 440,
    bufPages: 64,
    writePages: 256,
    weights: { prefault: 6, remap: 4, hostWrite: 4, race: 2, close: 1 },
  }),
  { weight: 1, arbitrary: fc.constant({ k: 'finish' as const }) },
);

function replaySnp(kernel: string | KernelProfile, ops: SnpOp[], runs: boolean): Replay {
  setPopulateRuns(runs);
  const host = createHost({ kernel, platform: 'snp', invariants: true });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_SNP_VM);
  const sev = host.open('/dev/sev');
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 512 * PAGE, flags: 0 });
  const gmem2 = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 64 * PAGE, flags: 0 });
  const inodes = [inodeOf(host, gmem), inodeOf(host, gmem2)];
  const hva = host.mmap({ length: 256 * PAGE, prot: RW, flags: ANON_PRIVATE });
  const hva1 = host.mmap({ length: 128 * PAGE, prot: RW, flags: ANON_SHARED });
  const hva2 = host.mmap({ length: 64 * PAGE, prot: RW, flags: ANON_SHARED });
  const slot = (id: number, gfn: number, n: number, addr: number, fd: number, pgoff: number) =>
    gmemSlot(host, vm, id, gfn, n, addr, fd, pgoff);
  slot(0, 0, 256, hva, gmem, 0);
  slot(1, 256, 128, hva1, gmem, 300);
  slot(2, 384, 64, hva2, gmem2, 0);
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: 0,
    size: SNP_GFNS * PAGE,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const enc = (id: string, data: Record<string, unknown>, fd = sev) => {
    const cmd = { id, sev_fd: fd, data, error: 0 };
    const r = outcome(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd));
    return { r, error: cmd.error, data: { ...data } };
  };
  enc('KVM_SEV_INIT2', { vmsa_features: 0, flags: 0, ghcb_version: 0 });
  enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x30000n });
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  fillSource(host, hva, 256, 5, 29);
  const buf = host.mmap({ length: 64 * PAGE, prot: RW, flags: ANON_PRIVATE });
  fillSource(host, buf, 64, 4, 37);
  host.munmap(buf + 20 * PAGE, 2 * PAGE);
  host.munmap(buf + 40 * PAGE, PAGE);
  const more = host.mmap({ length: 16 * PAGE, prot: RW, flags: ANON_PRIVATE });
  fillSource(host, more, 16, 16, 41);
  const ro = host.mmap({ length: 16 * PAGE, prot: uapi.PROT_READ, flags: ANON_PRIVATE });
  const wo = host.mmap({ length: 16 * PAGE, prot: uapi.PROT_WRITE, flags: ANON_PRIVATE });
  let gmemMap = 0;
  if (host.profile.gmem.mmap) {
    const g3 = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', {
      size: 16 * PAGE,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP,
    });
    gmemMap = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g3, offset: 0 });
  }
  const sources: [number, number][] = [
    [hva, 256],
    [buf, 64],
    [more, 16],
    [ro, 16],
    [wo, 16],
    [gmemMap, 16],
    [0, 0],
  ];

  const calls: unknown[] = [];
  for (const op of ops) {
    switch (op.k) {
      case 'update': {
        const [base, n] = sources[op.src]!;
        const uaddr = base === 0 ? 0 : base + (op.srcPage % n) * PAGE + (op.misalign ? 8 : 0);
        const data = { gfn_start: op.gfn, uaddr, len: op.npages * PAGE, type: op.type };
        calls.push(enc('KVM_SEV_SNP_LAUNCH_UPDATE', data, op.kvmFd ? kvm : sev));
        break;
      }
      case 'update-signal': {
        host.signalPending = true;
        const data = {
          gfn_start: op.gfn,
          uaddr: hva + op.gfn * PAGE,
          len: 4 * PAGE,
          type: uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL,
        };
        calls.push(enc('KVM_SEV_SNP_LAUNCH_UPDATE', data));
        host.signalPending = false;
        break;
      }
      case 'finish':
        calls.push(enc('KVM_SEV_SNP_LAUNCH_FINISH', {}));
        break;
      default:
        calls.push(hostOp({ host, vm, vcpu, gmem, gmem2, buf, written: hva }, op));
    }
  }

  const platform = host.platform as SnpPlatform;
  const pages: unknown[] = [];
  for (const inode of inodes) {
    for (let i = 0; i < inode.npages; i++) {
      const r = platform.rmp.lookup(inode.pfn(i));
      pages.push([
        r && { ...r, since: prov(r.since) },
        folioView(inode.folios.get(i)),
        hash(inode.readPage(i)),
      ]);
    }
  }
  const sptes: unknown[] = [];
  for (let gfn = 0; gfn < SNP_GFNS + 8; gfn++) sptes.push(spteView(host, vm, gfn));
  const ctx = snpGuestContext(host, vm);
  return {
    seen: {
      calls,
      pages,
      sptes,
      digest: ctx && Buffer.from(ctx.launchDigest.digest).toString('hex'),
      source: sourceView(host, sources.slice(0, 3)),
    },
    folioExtents: inodes.reduce((s, inode) => s + inode.folios.size, 0),
  };
}

// ---------------------------------------------------------------------------------------------- TDX

type TdxOp =
  | {
      k: 'region';
      gfn: number;
      nr: number;
      src: number;
      srcPage: number;
      measure: boolean;
      otherVcpu: boolean;
    }
  | { k: 'region-signal'; gfn: number }
  | HostOp;

/** Guest layout: slot 0 gfn 0..1023 (file 1 from 0, crossing 2 MiB), slot 1 gfn 1024..1151 (file 1 from 1060), slot 2 gfn 1152..1215 (file 2). */
const TDX_GFNS = 1216;
const SRC_PAGES = 700;
/** Sources: 0 a 700-page buffer with a hole at 300..301, 1 read-only, 2 write-only, 3 a guest_memfd mapping (6.18+), 4 none, 5 slot 0's shared memory. */
const TDX_SOURCES = 6;
const KVM_TDX_MEASURE_MEMORY_REGION = 1;

const tdCmd = (id: string, data: unknown, flags = 0) => ({ id, flags, data, hw_error: 0 });
/** CPUID.1:ECX[21] (x2APIC), which KVM_TDX_INIT_VCPU requires in the vCPU's CPUID. */
const X2APIC_CPUID = {
  nent: 3,
  entries: [
    { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 1 << 21, edx: 0 },
    { function: 0x80000000, index: 0, flags: 0, eax: 0x80000008, ebx: 0, ecx: 0, edx: 0 },
    { function: 0x80000008, index: 0, flags: 0, eax: 0x3030, ebx: 0, ecx: 0, edx: 0 },
  ],
};

const tdxGfn = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 1029 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1000, max: 1159 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1140, max: 1219 }) },
);
const tdxOp: fc.Arbitrary<TdxOp> = fc.oneof(
  {
    weight: 55,
    arbitrary: fc.record({
      k: fc.constant('region' as const),
      gfn: tdxGfn,
      nr: fc.oneof(
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }) },
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 700 }) },
      ),
      src: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 5, arbitrary: fc.nat(TDX_SOURCES - 1) },
      ),
      srcPage: fc.nat(SRC_PAGES - 1),
      measure: fc.boolean(),
      otherVcpu: fc.nat(32).map((n) => n === 0),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('region-signal' as const), gfn: fc.nat(999) }) },
  ...hostOpArbs({
    gmemPages: 1200,
    attrGfns: 1220,
    prefaultGfns: 1210,
    bufPages: SRC_PAGES,
    writePages: SRC_PAGES,
    weights: { prefault: 8, remap: 3, hostWrite: 2, race: 3, close: 2 },
  }),
);

function replayTdx(kernel: string | KernelProfile, ops: TdxOp[], runs: boolean): Replay {
  setPopulateRuns(runs);
  const host = createHost({ kernel, platform: 'tdx', invariants: true });
  const kvm = host.open('/dev/kvm');
  const vm = host.ioctl(kvm, 'KVM_CREATE_VM', uapi.KVM_X86_TDX_VM);
  host.ioctl(vm, 'KVM_ENABLE_CAP', { cap: uapi.KVM_CAP_SPLIT_IRQCHIP, flags: 0, args: [24] });
  const gpaw48 = { function: 0x80000008, index: 0, flags: 0, eax: 48 << 16 };
  host.ioctl(
    vm,
    'KVM_MEMORY_ENCRYPT_OP',
    tdCmd('KVM_TDX_INIT_VM', { attributes: 1n << 28n, xfam: 0x3n, cpuid: { nent: 1, entries: [gpaw48] } }),
  );
  const vcpu = host.ioctl(vm, 'KVM_CREATE_VCPU', 0);
  host.ioctl(vcpu, 'KVM_SET_CPUID2', X2APIC_CPUID);
  host.ioctl(vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_VCPU', 0));
  const vcpu2 = host.ioctl(vm, 'KVM_CREATE_VCPU', 1); // never initialized
  const gmem = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 1200 * PAGE, flags: 0 });
  const gmem2 = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', { size: 64 * PAGE, flags: 0 });
  const inodes = [inodeOf(host, gmem), inodeOf(host, gmem2)];
  const hva = host.mmap({ length: 1024 * PAGE, prot: RW, flags: ANON_SHARED });
  const hva1 = host.mmap({ length: 128 * PAGE, prot: RW, flags: ANON_SHARED });
  const hva2 = host.mmap({ length: 64 * PAGE, prot: RW, flags: ANON_SHARED });
  const slot = (id: number, gfn: number, n: number, addr: number, fd: number, pgoff: number) =>
    gmemSlot(host, vm, id, gfn, n, addr, fd, pgoff);
  slot(0, 0, 1024, hva, gmem, 0);
  slot(1, 1024, 128, hva1, gmem, 1060);
  slot(2, 1152, 64, hva2, gmem2, 0);
  host.ioctl(vm, 'KVM_SET_MEMORY_ATTRIBUTES', {
    address: 0,
    size: TDX_GFNS * PAGE,
    attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE,
    flags: 0,
  });
  const src = host.mmap({ length: SRC_PAGES * PAGE, prot: RW, flags: ANON_PRIVATE });
  fillSource(host, src, SRC_PAGES, 5, 13);
  host.munmap(src + 300 * PAGE, 2 * PAGE);
  const ro = host.mmap({ length: 16 * PAGE, prot: uapi.PROT_READ, flags: ANON_PRIVATE });
  const wo = host.mmap({ length: 16 * PAGE, prot: uapi.PROT_WRITE, flags: ANON_PRIVATE });
  let gmemMap = 0;
  if (host.profile.gmem.mmap) {
    const g3 = host.ioctl(vm, 'KVM_CREATE_GUEST_MEMFD', {
      size: 16 * PAGE,
      flags: uapi.GUEST_MEMFD_FLAG_MMAP,
    });
    gmemMap = host.mmap({ length: 16 * PAGE, prot: RW, flags: uapi.MAP_SHARED, fd: g3, offset: 0 });
  }
  const sources: [number, number][] = [
    [src, SRC_PAGES],
    [ro, 16],
    [wo, 16],
    [gmemMap, 16],
    [0, 0],
    [hva, 1024],
  ];
  const region = (
    fd: number,
    data: { source_addr: number; gpa: number; nr_pages: number },
    flags: number,
  ) => {
    const cmd = tdCmd('KVM_TDX_INIT_MEM_REGION', data, flags);
    const r = outcome(() => host.ioctl(fd, 'KVM_MEMORY_ENCRYPT_OP', cmd));
    return { r, hw_error: cmd.hw_error, data: { ...data } };
  };

  const calls: unknown[] = [];
  for (const op of ops) {
    switch (op.k) {
      case 'region': {
        const [base, n] = sources[op.src]!;
        const data = {
          source_addr: base === 0 ? 0 : base + (op.srcPage % n) * PAGE,
          gpa: op.gfn * PAGE,
          nr_pages: op.nr,
        };
        calls.push(region(op.otherVcpu ? vcpu2 : vcpu, data, op.measure ? KVM_TDX_MEASURE_MEMORY_REGION : 0));
        break;
      }
      case 'region-signal':
        host.signalPending = true;
        calls.push(
          region(vcpu, { source_addr: src, gpa: op.gfn * PAGE, nr_pages: 5 }, KVM_TDX_MEASURE_MEMORY_REGION),
        );
        host.signalPending = false;
        break;
      default:
        calls.push(hostOp({ host, vm, vcpu, gmem, gmem2, buf: src, written: src }, op));
    }
  }

  const tdx = tdxVmOf(host, vm);
  const td = tdx.td!;
  const pages: unknown[] = [];
  for (const inode of inodes) {
    for (let i = 0; i < inode.npages; i++)
      pages.push([folioView(inode.folios.get(i)), hash(inode.readPage(i))]);
  }
  const gfns: unknown[] = [];
  for (let gfn = 0; gfn < TDX_GFNS + 4; gfn++) {
    const leaf = td.sept.get(gfn);
    gfns.push([
      spteView(host, vm, gfn),
      leaf && { state: leaf.state, delta: leaf.delta },
      tdx.premapped.get(gfn),
    ]);
  }
  const nrPremapped = tdx.nrPremapped;
  const finalize = outcome(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_FINALIZE_VM', 0)));
  const mrtd = tdx.mrtd();
  return {
    seen: {
      calls,
      pages,
      gfns,
      nrPremapped,
      finalize,
      mrtd: mrtd && Buffer.from(mrtd).toString('hex'),
      seamcalls: Object.fromEntries([...td.calls].sort()),
      source: sourceView(host, [[src, SRC_PAGES]]),
    },
    folioExtents: inodes.reduce((s, inode) => s + inode.folios.size, 0),
  };
}

// -------------------------------------------------------------------------------------------- tests

/** Where the TDX run path applies (tdx-vm.ts postPopulateRun): not the dev tree, which goes page by page after KVM_PRE_FAULT_MEMORY, nor a kernel that forgets to clear. */
const tdxHasRunPath = (p: KernelProfile) =>
  hasRunPath(p) && p.tdx.initMemRegion !== 'requires-prefault' && !p.bugs?.noClearOnPrepare;

/** The deliberately broken variants of the reviewer's *-bugs fuzzers (ProfileBugs). */
const BUGS: ProfileBugs[] = [
  { noClearOnPrepare: true },
  { noZapOnPunchHole: true },
  { noZapOnAttributeChange: true },
  { hostMapsPrivate: true },
  { noZapOnPunchHole: true, noZapOnAttributeChange: true, hostMapsPrivate: true },
];

const SNP_RUNS = 8;
const SNP_OPS = { minLength: 20, maxLength: 50 };
const TDX_RUNS = 6;
const TDX_OPS = { minLength: 15, maxLength: 35 };
/** Fewer sequences per broken profile: they add breadth (stale mappings, leaks), not depth. */
const BUG_RUNS = 3;

const snpCases: [string, string | KernelProfile, number][] = [
  ...SNP_KERNELS.map((k): [string, string, number] => [k, k, SNP_RUNS]),
  ...['v6.16', 'v7.0'].flatMap((k) =>
    BUGS.map((b): [string, KernelProfile, number] => {
      const p = withBugs(k, b);
      return [p.name, p, BUG_RUNS];
    }),
  ),
];
const tdxCases: [string, string | KernelProfile, number][] = [
  ...TDX_KERNELS.map((k): [string, string, number] => [k, k, TDX_RUNS]),
  ...['v6.16', 'v7.0'].flatMap((k) =>
    BUGS.map((b): [string, KernelProfile, number] => {
      const p = withBugs(k, b);
      return [p.name, p, BUG_RUNS];
    }),
  ),
];
const profileOf = (kernel: string | KernelProfile) =>
  typeof kernel === 'string' ? getProfile(kernel)! : kernel;

describe.each(snpCases.map(([name, kernel, runs], i) => ({ name, kernel, runs, seed: BASE_SEED + i })))(
  'SNP populate runs on $name ($runs sequences, seed $seed)',
  ({ kernel, runs, seed }) => {
    it('random SNP_LAUNCH_UPDATE sequences: same calls, RMP, folios, bytes, SPTEs, digest and source with runs on and off; runs taken where the profile has them', () => {
      const { fewer, more } = check(
        fc.array(snpOp, SNP_OPS),
        (ops, on) => replaySnp(kernel, ops, on),
        seed,
        runs,
      );
      expect(more).toBe(0);
      // Runs taken: some sequence needed fewer calls. Not a share of them: that depends on the seed
      // (PROP_SEED=707 gave 1 of 3 on a broken profile).
      if (hasRunPath(profileOf(kernel))) expect(fewer).toBeGreaterThan(0);
      else expect(fewer).toBe(0);
    });
  },
);

describe.each(tdxCases.map(([name, kernel, runs], i) => ({ name, kernel, runs, seed: BASE_SEED + 100 + i })))(
  'TDX populate runs on $name ($runs sequences, seed $seed)',
  ({ kernel, runs, seed }) => {
    it('random INIT_MEM_REGION sequences: same calls, folios, bytes, SPTEs, S-EPT, SEAMCALLs, nr_premapped, MRTD and source with runs on and off; runs taken where the profile has them', () => {
      const { fewer, more } = check(
        fc.array(tdxOp, TDX_OPS),
        (ops, on) => replayTdx(kernel, ops, on),
        seed,
        runs,
      );
      expect(more).toBe(0);
      if (tdxHasRunPath(profileOf(kernel))) expect(fewer).toBeGreaterThan(0);
      else expect(fewer).toBe(0);
    });
  },
);
