/**
 * KVM_TDX_INIT_MEM_REGION's run path (tdx-vm.ts postPopulateRun through guest-memfd.ts
 * kvmGmemPopulateRun) is an optimisation of the kernel's page-by-page loop. These tests replay
 * the same region sequences with runs on and off, on every TDX profile, and compare what a caller
 * or a later step can see: each ioctl's result and the region copied back, the SEAMCALL counts,
 * nr_premapped, the MRTD at finalize, and per page the folio, its bytes, the SPTE and the S-EPT
 * leaf. The sequences cut runs short: an already added page, a source crossing into an unmapped
 * hole, a page that is not private, and they cross a 2 MiB boundary (TDH.MEM.SEPT.ADD).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { tdxVmOf } from '../../src/kernel/arch/tdx/index.js';
import { type GmemFile, setPopulateRuns } from '../../src/kernel/kvm/guest-memfd.js';
import type { VmFile } from '../../src/kernel/kvm/vm.js';
import { uapi } from '../../src/uapi/index.js';
import { folioView, prov } from '../state-views.js';
import { buildTd, errnoOf, finalize, MiB, TDX_PROFILES, tdCmd } from './td.js';

const PAGE = 4096;
const NPAGES = (4 * MiB) / PAGE;
const MEASURE = 1; // KVM_TDX_MEASURE_MEMORY_REGION

afterEach(() => setPopulateRuns(true));

function replay(kernel: string, runs: boolean) {
  setPopulateRuns(runs);
  const td = buildTd(kernel, 0, 4 * MiB);
  const h = td.host;
  // A 700-page source: distinct pages, every fifth one zero; its last 4 pages unmapped.
  const src = h.mmap({ length: 700 * PAGE, prot: 3, flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS });
  for (let i = 0; i < 700; i++) {
    if (i % 5 === 2) continue;
    h.memory.write(
      src + i * PAGE,
      Uint8Array.from({ length: PAGE }, (_, k) => (i * 13 + k) % 251 || 7),
    );
  }
  h.munmap(src + 696 * PAGE, 4 * PAGE);
  // One page shared in the middle of the range (the fault's attribute check stops a run there).
  h.ioctl(td.vm, 'KVM_SET_MEMORY_ATTRIBUTES', { address: 900 * PAGE, size: PAGE, attributes: 0, flags: 0 });
  const calls: unknown[] = [];
  const region = (gpaPage: number, nr: number, flags: number, srcPage: number) => {
    const data = { source_addr: src + srcPage * PAGE, gpa: gpaPage * PAGE, nr_pages: nr };
    const errno = errnoOf(() =>
      h.ioctl(td.vcpu, 'KVM_MEMORY_ENCRYPT_OP', tdCmd('KVM_TDX_INIT_MEM_REGION', data, flags)),
    );
    calls.push({ errno, data: { ...data, source_addr: data.source_addr - src } });
  };
  region(16, 8, MEASURE, 16);
  region(0, 40, MEASURE, 0); // stops at the page added above
  region(24, 600, 0, 24); // across the 2 MiB boundary, unmeasured
  region(640, 100, MEASURE, 640); // the source ends (unmapped) after page 695
  region(896, 10, MEASURE, 100); // gfn 900 is shared
  region(901, 50, MEASURE, 200);
  const tdx = tdxVmOf(h, td.vm);
  const counts = Object.fromEntries([...tdx.td!.calls].sort());
  const nrPremapped = tdx.nrPremapped;
  const fin = errnoOf(() => finalize(td));
  const mrtd = tdx.mrtd();
  const inode = (h.fds.lookup(td.gmem) as GmemFile).inode;
  const vm = (h.fds.lookup(td.vm) as VmFile).vm;
  const pages: unknown[] = [];
  for (let i = 0; i < NPAGES; i++) {
    const f = inode.folios.get(i);
    const s = vm.mmu.sptes.get(i);
    const leaf = tdx.td!.sept.get(i);
    const bytes = inode.readPage(i);
    pages.push({
      i,
      folio: folioView(f),
      bytes: bytes ? Buffer.from(bytes).toString('base64') : null,
      spte: s && {
        private: s.private,
        slot: s.slot?.id,
        pfnDelta: s.pfnDelta,
        genIsFolio: s.gen === f?.gen,
        since: prov(s.since),
      },
      sept: leaf && { state: leaf.state, delta: leaf.delta },
    });
  }
  return {
    calls,
    counts,
    nrPremapped,
    fin,
    mrtd: mrtd && Buffer.from(mrtd).toString('hex'),
    pages,
  };
}

describe.each(TDX_PROFILES)('INIT_MEM_REGION runs on %s', (kernel) => {
  it('region sequences give the same results, MRTD and page state with runs on and off', () => {
    const perPage = replay(kernel, false);
    const withRuns = replay(kernel, true);
    expect(withRuns.calls).toEqual(perPage.calls);
    expect(withRuns.counts).toEqual(perPage.counts);
    expect(withRuns.nrPremapped).toBe(perPage.nrPremapped);
    expect(withRuns.fin).toBe(perPage.fin);
    expect(withRuns.mrtd).toBe(perPage.mrtd);
    expect(withRuns.pages).toEqual(perPage.pages);
  });
});

describe.each(['v6.16', 'v6.19', 'v7.0'])('INIT_MEM_REGION sequence on %s', (kernel) => {
  it('did what the comparison relies on: partial regions copied back, pages added and measured', () => {
    const r = replay(kernel, true);
    expect(r.calls[1]).toMatchObject({ errno: expect.any(String), data: { gpa: 16 * PAGE, nr_pages: 24 } });
    expect(r.calls[2]).toMatchObject({ errno: undefined, data: { gpa: 624 * PAGE, nr_pages: 0 } });
    expect(r.calls[3]).toMatchObject({ errno: 'EFAULT', data: { gpa: 696 * PAGE, nr_pages: 44 } });
    expect(r.calls[4]).toMatchObject({ data: { gpa: 900 * PAGE, nr_pages: 6 } });
    expect(r.counts['TDH.MEM.PAGE.ADD']).toBe(8 + 16 + 600 + 56 + 4 + 50);
    expect(r.counts['TDH.MR.EXTEND']).toBe(16 * (8 + 16 + 56 + 4 + 50));
    expect(r.mrtd).toMatch(/^[0-9a-f]{96}$/);
  });
});
