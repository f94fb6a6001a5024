/**
 * Stored page bytes, shared by every page store of the model (anonymous memory, shmem, guest_memfd
 * pages): how a write makes a new page, and how a range of stored pages is forgotten.
 */
import { PAGE_SIZE } from '../uapi/mman.js';

/**
 * Page byte arrays are never changed once stored, so anonymous memory, guest_memfd pages and the
 * measure tools' firmware image share them freely (a populated page keeps its source's array). A
 * write stores a new array: pageWith() is page `cur` (null = zeroes) with `bytes` at `off`.
 */
export function pageWith(cur: Uint8Array | null | undefined, off: number, bytes: Uint8Array): Uint8Array {
  // Uint8Array's own slice(): a Buffer's would be a view of the caller's bytes.
  if (off === 0 && bytes.length === PAGE_SIZE) return Uint8Array.prototype.slice.call(bytes);
  let p: Uint8Array;
  if (cur?.length === PAGE_SIZE) p = cur.slice();
  else {
    // No page yet, or a short guest_memfd entry (the rest of the page is zero).
    p = new Uint8Array(PAGE_SIZE);
    if (cur) p.set(cur);
  }
  p.set(bytes, off);
  return p;
}

/** The key of PageBytes' resident entry: no page has it (pages are numbered from 0). */
const RESIDENT = -1;
const NO_BYTES = new Uint8Array(0);

/**
 * Page number -> stored bytes (anonymous memory, shmem, guest_memfd pages); absent pages read as
 * zeroes.
 *
 * A Map with one entry that never leaves. V8 shrinks a Map's hash table when a delete leaves fewer
 * entries than half its buckets, with a runtime call that allocates a new table. A page store
 * often swings between 0 and 1 entries: a guest writes a page, then the VMM discards it at
 * conversion (punch-hole, MADV_DONTNEED). Each such delete cost about 0.5 us, 7% of the conversion
 * trace. With the resident entry the table never drops below its minimum, so it is never shrunk.
 */
export class PageBytes {
  private readonly m = new Map<number, Uint8Array>([[RESIDENT, NO_BYTES]]);

  /** Pages stored. */
  get size(): number {
    return this.m.size - 1;
  }

  /** `page` must be a page number (>= 0). */
  get(page: number): Uint8Array | undefined {
    return this.m.get(page);
  }

  has(page: number): boolean {
    return page !== RESIDENT && this.m.has(page);
  }

  set(page: number, bytes: Uint8Array): void {
    this.m.set(page, bytes);
  }

  delete(page: number): void {
    if (page !== RESIDENT) this.m.delete(page);
  }

  clear(): void {
    this.m.clear();
    this.m.set(RESIDENT, NO_BYTES);
  }

  /** Forget pages [first, end): a TiB range costs what was stored, not its size. */
  drop(first: number, end: number): void {
    // Memory never written (e.g. a discarded shared side) costs nothing, not a key walk.
    const n = this.m.size - 1;
    if (n === 0) return;
    if (n < end - first) {
      for (const p of [...this.m.keys()]) if (p >= first && p < end && p !== RESIDENT) this.m.delete(p);
    } else for (let p = Math.max(first, 0); p < end; p++) this.m.delete(p);
  }
}
