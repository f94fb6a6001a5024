/**
 * The pages of a private anonymous mapping: the pages written one by one, by page number, and runs
 * of pages handed over whole (AddressSpace.writeShared(): a VMM copying a firmware image into its
 * flash mapping), which cost one record per run instead of one map entry per page. A page read
 * from a run is a view of the caller's buffer; stored page arrays are never changed (page-bytes.ts
 * pageWith()), so a later write makes the page its own array, which takes precedence over the run.
 */
import { PAGE_SIZE } from '../uapi/mman.js';
import { PageBytes } from './page-bytes.js';

interface SharedRun {
  first: number;
  n: number;
  bytes: Uint8Array;
}

export class AnonPages {
  private readonly pages = new PageBytes();
  /** Disjoint runs; few (one per writeShared() call). */
  private runs: SharedRun[] = [];

  /** The page's bytes, undefined if never written (zeroes). */
  get(page: number): Uint8Array | undefined {
    const p = this.pages.get(page);
    if (p !== undefined || this.runs.length === 0) return p;
    for (const r of this.runs) {
      const i = page - r.first;
      if (i >= 0 && i < r.n) return r.bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    }
    return undefined;
  }

  set(page: number, bytes: Uint8Array): void {
    this.pages.set(page, bytes);
  }

  /** Pages [first, first + bytes.length / 4096) become the pages of `bytes` (a multiple of 4 KiB). */
  share(first: number, bytes: Uint8Array): void {
    const n = bytes.length / PAGE_SIZE;
    if (n === 0) return;
    this.drop(first, first + n);
    this.runs.push({ first, n, bytes });
  }

  /** Forget pages [first, end): they read as zeroes again. */
  drop(first: number, end: number): void {
    this.pages.drop(first, end);
    if (this.runs.length === 0) return;
    const kept: SharedRun[] = [];
    for (const r of this.runs) {
      const rEnd = r.first + r.n;
      if (rEnd <= first || r.first >= end) {
        kept.push(r);
        continue;
      }
      // The parts of the run outside [first, end) stay.
      if (r.first < first)
        kept.push({
          first: r.first,
          n: first - r.first,
          bytes: r.bytes.subarray(0, (first - r.first) * PAGE_SIZE),
        });
      if (rEnd > end)
        kept.push({ first: end, n: rEnd - end, bytes: r.bytes.subarray((end - r.first) * PAGE_SIZE) });
    }
    this.runs = kept;
  }
}
