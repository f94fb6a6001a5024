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
 * Forget the stored pages [first, end) of a page map (anonymous memory, shmem, guest_memfd bytes):
 * a TiB range costs what was stored, not its size.
 */
export function dropPages(pages: Map<number, Uint8Array>, first: number, end: number): void {
  // An empty map (memory never written, e.g. a discarded shared side) costs nothing, not a key walk.
  if (pages.size === 0) return;
  if (pages.size < end - first) {
    for (const p of [...pages.keys()]) if (p >= first && p < end) pages.delete(p);
  } else for (let p = first; p < end; p++) pages.delete(p);
}
