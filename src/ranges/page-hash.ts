/**
 * PageHash: a hash map from pages (non-negative safe integers) to values, for the page layers of
 * PointExtentMap and PageCells.
 *
 * Why not a Map: a layer holds up to millions of scattered pages, so nearly every lookup of a page
 * not seen before misses the cache, and V8's Map reaches an absent key through a bucket array and
 * then a chain of entries (two to three misses). Here a lookup probes one flat typed array, open
 * addressing with linear probing, key and entry index side by side: one miss, and no garbage
 * collector work (the array holds no pointers). Values are appended to plain arrays in insertion
 * order, as a Map keeps them, so the young values a layer takes land in the collector's remembered
 * set in address order (values scattered over a big array made every scavenge twice as slow).
 */

/** A probe slot never used; one whose entry was deleted (probing goes on past it). */
const EMPTY = -1;
const GONE = -2;
/** Smallest table: 2^MIN_BITS probe slots. */
const MIN_BITS = 4;
/** Fibonacci hashing multiplier (2^32 / golden ratio). */
const MIX = 0x9e3779b1;

export class PageHash<V> {
  /**
   * slots[2i] = page (EMPTY, GONE), slots[2i + 1] = its entry's index in pages/vals: 32-bit words,
   * half the bytes of a double (pages below 2^31: every gfn of a guest below 8 TiB).
   */
  private slots: Int32Array;
  /** Pages from 2^31 on. */
  private wide: Map<number, V> | undefined;
  private bits: number;
  /** Entries in insertion order; a deleted entry keeps its place with page -1. */
  private pages: number[] = [];
  private vals: (V | undefined)[] = [];
  private live = 0;
  /** Probe slots not EMPTY (live and GONE). */
  private used = 0;
  /** Inside forEach: entries must keep their places (no compaction). */
  private iterating = false;

  constructor() {
    this.bits = MIN_BITS;
    this.slots = new Int32Array(2 << MIN_BITS).fill(EMPTY);
  }

  get size(): number {
    return this.wide === undefined ? this.live : this.live + this.wide.size;
  }

  /** The first probe slot of `page` (below 2^31). */
  private home(page: number): number {
    return Math.imul(page, MIX) >>> (32 - this.bits);
  }

  /** The probe slot holding `page` (below 2^31), or -1. */
  private find(page: number): number {
    // A negative page would match the EMPTY and GONE marks.
    if (page < 0) return -1;
    const s = this.slots;
    const mask = (1 << this.bits) - 1;
    for (let i = this.home(page); ; i = (i + 1) & mask) {
      const k = s[2 * i]!;
      if (k === page) return i;
      if (k === EMPTY) return -1;
    }
  }

  get(page: number): V | undefined {
    if (page > 0x7fffffff) return this.wide?.get(page);
    const i = this.find(page);
    return i < 0 ? undefined : this.vals[this.slots[2 * i + 1]!];
  }

  has(page: number): boolean {
    if (page > 0x7fffffff) return this.wide?.has(page) ?? false;
    return this.find(page) >= 0;
  }

  /** `page` must be a non-negative safe integer (RangeError otherwise, nothing changed). */
  set(page: number, value: V): void {
    if (!Number.isSafeInteger(page) || page < 0) throw new RangeError(`PageHash: bad page ${page}`);
    if (page > 0x7fffffff) {
      this.wide ??= new Map();
      this.wide.set(page, value);
      return;
    }
    const s = this.slots;
    const mask = (1 << this.bits) - 1;
    let free = -1;
    let i = this.home(page);
    for (; ; i = (i + 1) & mask) {
      const k = s[2 * i]!;
      if (k === page) {
        this.vals[s[2 * i + 1]!] = value;
        return;
      }
      if (k === EMPTY) break;
      if (k === GONE && free < 0) free = i;
    }
    if (free >= 0) i = free;
    else this.used++;
    s[2 * i] = page;
    s[2 * i + 1] = this.pages.length;
    this.pages.push(page);
    this.vals.push(value);
    this.live++;
    if (this.used * 2 > 1 << this.bits) this.rehash();
  }

  /** Deletes `page`; true if it was there. forEach's callback may call it. */
  delete(page: number): boolean {
    if (page > 0x7fffffff) return this.wide?.delete(page) ?? false;
    const i = this.find(page);
    if (i < 0) return false;
    const at = this.slots[2 * i + 1]!;
    this.slots[2 * i] = GONE;
    this.pages[at] = -1;
    this.vals[at] = undefined;
    this.live--;
    // Mostly deleted entries: compact, so that forEach does not keep walking them.
    if (!this.iterating && this.pages.length > 4 * this.live + 64) this.rehash();
    return true;
  }

  clear(): void {
    this.bits = MIN_BITS;
    this.slots = new Int32Array(2 << MIN_BITS).fill(EMPTY);
    this.wide = undefined;
    this.pages = [];
    this.vals = [];
    this.live = 0;
    this.used = 0;
  }

  /** fn(value, page) for every entry in insertion order; fn may delete entries, not add them. */
  forEach(fn: (value: V, page: number) => void): void {
    const pages = this.pages;
    const vals = this.vals;
    this.iterating = true;
    try {
      for (let i = 0; i < pages.length; i++) {
        const p = pages[i]!;
        if (p >= 0) fn(vals[i] as V, p);
      }
      // Deleting the entry being visited is allowed in a Map's forEach too.
      this.wide?.forEach(fn);
    } finally {
      this.iterating = false;
    }
  }

  /**
   * A table sized for the live entries (load at most 1/4 after, 1/2 before the next rehash), the
   * deleted slots gone; deleted entries are compacted away (entry numbers change).
   */
  private rehash(): void {
    let bits = MIN_BITS;
    while (1 << bits < this.live * 4) bits++;
    const old = this.slots;
    const s = new Int32Array(2 << bits).fill(EMPTY);
    const mask = (1 << bits) - 1;
    this.bits = bits;
    this.slots = s;
    this.used = this.live;
    const put = (page: number, e: number): void => {
      let i = this.home(page);
      while (s[2 * i] !== EMPTY) i = (i + 1) & mask;
      s[2 * i] = page;
      s[2 * i + 1] = e;
    };
    if (this.live === this.pages.length) {
      // Growth, nothing deleted: the old slots in order. The slot is the hash's top bits, so old
      // slot i's pages go near slot 2i (or i / 2): the new table is written front to back, not
      // at random.
      for (let j = 0; j < old.length; j += 2) if (old[j]! >= 0) put(old[j]!, old[j + 1]!);
      return;
    }
    const pages: number[] = [];
    const vals: (V | undefined)[] = [];
    for (let e = 0; e < this.pages.length; e++) {
      const p = this.pages[e]!;
      if (p < 0) continue;
      put(p, pages.length);
      pages.push(p);
      vals.push(this.vals[e]);
    }
    this.pages = pages;
    this.vals = vals;
  }
}
