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
 *
 * A pair table (`new PageHash(true)`) keeps two values per page in two such arrays, reached
 * through the page's entry (entryOf, valueAt, value2At): PageCells' two columns without an object
 * per page.
 */

/** A probe slot never used; one whose entry was deleted (probing goes on past it). */
const EMPTY = -1;
const GONE = -2;
/** Smallest table: 2^MIN_BITS probe slots. */
const MIN_BITS = 4;
/** Fibonacci hashing multiplier (2^32 / golden ratio). */
const MIX = 0x9e3779b1;

export class PageHash<V, W = never> {
  /**
   * slots[2i] = page (EMPTY, GONE), slots[2i + 1] = its entry's index in pages/vals: 32-bit words,
   * half the bytes of a double (pages below 2^31: every gfn of a guest below 8 TiB).
   */
  private slots: Int32Array;
  /** Pages from 2^31 on -> their entries. */
  private wide: Map<number, number> | undefined;
  private bits: number;
  /** Entries in insertion order; a deleted entry keeps its place with page -1. */
  private pages: number[] = [];
  private vals: (V | undefined)[] = [];
  /** A pair table's second values, alongside vals (null: not a pair table). */
  private vals2: (W | undefined)[] | null;
  private live = 0;
  /** Probe slots not EMPTY (live and GONE). */
  private used = 0;
  /** Inside forEach / forEachEntry: entries must keep their places (no compaction). */
  private iterating = false;

  constructor(pairs = false) {
    this.bits = MIN_BITS;
    this.slots = new Int32Array(2 << MIN_BITS).fill(EMPTY);
    this.vals2 = pairs ? [] : null;
  }

  get size(): number {
    return this.live;
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

  /**
   * The entry of `page`, or -1: an index for valueAt() and the like, valid until a page is added,
   * deleted outside a forEach (a delete may compact the entries), or the table is cleared.
   */
  entryOf(page: number): number {
    if (page > 0x7fffffff) return this.wide?.get(page) ?? -1;
    const i = this.find(page);
    return i < 0 ? -1 : this.slots[2 * i + 1]!;
  }

  valueAt(e: number): V {
    return this.vals[e] as V;
  }

  setValueAt(e: number, v: V): void {
    this.vals[e] = v;
  }

  /** A pair table's second value of entry e. */
  value2At(e: number): W {
    return this.vals2![e] as W;
  }

  setValue2At(e: number, w: W): void {
    this.vals2![e] = w;
  }

  get(page: number): V | undefined {
    const e = this.entryOf(page);
    return e < 0 ? undefined : this.vals[e];
  }

  has(page: number): boolean {
    return this.entryOf(page) >= 0;
  }

  /** `page` must be a non-negative safe integer (RangeError otherwise, nothing changed). */
  set(page: number, value: V): void {
    this.upsert(page, value, undefined, false);
  }

  /**
   * A pair table's entry for `page` (made if absent), now holding (value, value2): both values are
   * written either way. Its index. `page` must be a non-negative safe integer (RangeError
   * otherwise, nothing changed).
   */
  add(page: number, value: V, value2: W | undefined): number {
    return this.upsert(page, value, value2, true);
  }

  /** set() (second false: a pair's second value stays) and add(), with one probe walk. */
  private upsert(page: number, value: V, value2: W | undefined, second: boolean): number {
    if (!Number.isSafeInteger(page) || page < 0) throw new RangeError(`PageHash: bad page ${page}`);
    if (page > 0x7fffffff) {
      this.wide ??= new Map();
      let e = this.wide.get(page);
      if (e === undefined) {
        e = this.append(page, value, value2);
        this.wide.set(page, e);
      } else this.store(e, value, value2, second);
      return e;
    }
    const s = this.slots;
    const mask = (1 << this.bits) - 1;
    let free = -1;
    let i = this.home(page);
    for (; ; i = (i + 1) & mask) {
      const k = s[2 * i]!;
      if (k === page) {
        const e = s[2 * i + 1]!;
        this.store(e, value, value2, second);
        return e;
      }
      if (k === EMPTY) break;
      if (k === GONE && free < 0) free = i;
    }
    if (free >= 0) i = free;
    else this.used++;
    const e = this.append(page, value, value2);
    s[2 * i] = page;
    s[2 * i + 1] = e;
    if (this.used * 2 <= 1 << this.bits) return e;
    // The rehash may compact deleted entries away, which renumbers them.
    this.rehash();
    return this.entryOf(page);
  }

  private store(e: number, value: V, value2: W | undefined, second: boolean): void {
    this.vals[e] = value;
    if (second) this.vals2![e] = value2;
  }

  /** A new entry at the end, for a page the table does not hold; its index. */
  private append(page: number, value: V, value2: W | undefined): number {
    const e = this.pages.length;
    this.pages.push(page);
    this.vals.push(value);
    this.vals2?.push(value2);
    this.live++;
    return e;
  }

  /** Deletes `page`; true if it was there. forEach's callback may call it. */
  delete(page: number): boolean {
    let at: number;
    if (page > 0x7fffffff) {
      const e = this.wide?.get(page);
      if (e === undefined) return false;
      this.wide!.delete(page);
      at = e;
    } else {
      const i = this.find(page);
      if (i < 0) return false;
      at = this.slots[2 * i + 1]!;
      this.slots[2 * i] = GONE;
    }
    this.pages[at] = -1;
    this.vals[at] = undefined;
    if (this.vals2 !== null) this.vals2[at] = undefined;
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
    if (this.vals2 !== null) this.vals2 = [];
    this.live = 0;
    this.used = 0;
  }

  /** fn(value, page) for every entry in insertion order; fn may delete entries, not add them. */
  forEach(fn: (value: V, page: number) => void): void {
    this.forEachEntry((e, page) => fn(this.vals[e] as V, page));
  }

  /**
   * fn(entry, page) for every entry in insertion order; fn may read and change the entry's
   * values, and delete entries, not add them.
   */
  forEachEntry(fn: (e: number, page: number) => void): void {
    const pages = this.pages;
    this.iterating = true;
    try {
      for (let e = 0; e < pages.length; e++) {
        const p = pages[e]!;
        if (p >= 0) fn(e, p);
      }
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
    const put = (page: number, e: number): void => {
      let i = this.home(page);
      while (s[2 * i] !== EMPTY) i = (i + 1) & mask;
      s[2 * i] = page;
      s[2 * i + 1] = e;
    };
    if (this.live === this.pages.length) {
      // Growth, nothing deleted: the old slots in order. The slot is the hash's top bits, so old
      // slot i's pages go near slot 2i (or i / 2): the new table is written front to back, not
      // at random. Entries keep their numbers.
      let used = 0;
      for (let j = 0; j < old.length; j += 2)
        if (old[j]! >= 0) {
          put(old[j]!, old[j + 1]!);
          used++;
        }
      this.used = used;
      return;
    }
    const pages: number[] = [];
    const vals: (V | undefined)[] = [];
    const vals2: (W | undefined)[] | null = this.vals2 === null ? null : [];
    const wide = this.wide === undefined ? undefined : new Map<number, number>();
    let used = 0;
    for (let e = 0; e < this.pages.length; e++) {
      const p = this.pages[e]!;
      if (p < 0) continue;
      if (p > 0x7fffffff) wide!.set(p, pages.length);
      else {
        put(p, pages.length);
        used++;
      }
      pages.push(p);
      vals.push(this.vals[e]);
      vals2?.push(this.vals2![e]);
    }
    this.pages = pages;
    this.vals = vals;
    this.vals2 = vals2;
    this.wide = wide;
    this.used = used;
  }
}
