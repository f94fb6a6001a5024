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

/**
 * Page number -> stored bytes (anonymous memory, shmem, guest_memfd pages); absent pages read as
 * zeroes.
 *
 * The page stored last is kept in a slot of its own, in front of a Map that holds the others. A
 * page store often swings between 0 and 1 entries: a guest writes a page, then the VMM discards it
 * at conversion (punch-hole, MADV_DONTNEED). On a Map that is costly in V8: a delete that leaves
 * fewer entries than half the buckets shrinks the table, and deleted entries fill it until a set
 * rehashes it, each a runtime call that allocates a new table (together ~0.5 us per page, 4-9% of
 * the conversion trace). With the slot such a page never reaches the Map.
 */
export class PageBytes {
  private readonly m = new Map<number, Uint8Array>();
  /** The slot: page number (-1: empty) and bytes. Never also in the Map. */
  private slotPage = -1;
  private slotBytes: Uint8Array | undefined = undefined;

  /** Pages stored. */
  get size(): number {
    return this.m.size + (this.slotPage < 0 ? 0 : 1);
  }

  get(page: number): Uint8Array | undefined {
    if (page === this.slotPage) return this.slotBytes;
    // Most stores hold no page outside the slot (a guest reading memory nobody wrote): no lookup,
    // which for a page number above 2^31 (host addresses) would hash a heap number.
    return this.m.size === 0 ? undefined : this.m.get(page);
  }

  has(page: number): boolean {
    return (page === this.slotPage && page >= 0) || (this.m.size !== 0 && this.m.has(page));
  }

  /** `page` must be a page number (>= 0). */
  set(page: number, bytes: Uint8Array): void {
    if (page !== this.slotPage) {
      // The page stored before moves into the Map; the new one takes the slot.
      if (this.slotPage >= 0) this.m.set(this.slotPage, this.slotBytes!);
      if (this.m.size !== 0) this.m.delete(page);
      this.slotPage = page;
    }
    this.slotBytes = bytes;
  }

  delete(page: number): void {
    if (page === this.slotPage) this.emptySlot();
    else if (this.m.size !== 0) this.m.delete(page);
  }

  clear(): void {
    this.m.clear();
    this.emptySlot();
  }

  /** Forget pages [first, end): a TiB range costs what was stored, not its size. */
  drop(first: number, end: number): void {
    if (this.slotPage >= first && this.slotPage < end) this.emptySlot();
    const m = this.m;
    // Memory never written (e.g. a discarded shared side) costs nothing, not a key walk.
    if (m.size === 0) return;
    if (m.size < end - first) {
      for (const p of [...m.keys()]) if (p >= first && p < end) m.delete(p);
    } else for (let p = first; p < end; p++) m.delete(p);
  }

  private emptySlot(): void {
    this.slotPage = -1;
    this.slotBytes = undefined;
  }
}
