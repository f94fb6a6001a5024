/**
 * PointExtentMap: an ExtentMap with a hash layer in front for single pages.
 *
 * Why: the per-page state that a guest's scattered accesses and conversions churn (SPTEs, folios,
 * memory attributes) ends up as up to millions of one-page extents. In the B+-tree every one-page
 * set is a descent plus an in-leaf splice, and a page typically goes through several (map, zap,
 * map again) within one conversion. Here a one-page set or get is a hash-map operation on a layer
 * of page overrides (a field access for the page set last, which waits in a slot in front of the
 * layer); the tree only sees what is left when something needs order (iteration, range edits,
 * extentAt/nextExtent, size, clone), and then the layer is flushed into it in page order. A page
 * mapped, zapped and mapped again thus costs the tree one insert, not five.
 *
 * Two maps over the same pages may share their layer (PageCells: a VM's memory attributes and its
 * SPTEs, which a conversion changes page by page together): each page is then one hash entry
 * holding both maps' overrides, so a page both maps touch costs one hash lookup and one insert,
 * not two of each (on a million scattered pages most of a lookup is the cache miss).
 *
 * Same contract as ExtentMap (maximal extents, snapshot iterators, O(1) clone after the flush);
 * `size` is exact but flushes, so hot paths ask `isEmpty()` instead.
 */
import { type Extent, ExtentMap } from './extent-map.js';
import { PageHash } from './page-hash.js';

/** Stands for "no extent here" in the layer, which otherwise holds values. */
const HOLE: unique symbol = Symbol('hole');

/** A layer no bigger than this is scanned for a range edit; a bigger one is flushed. */
const SCAN_MAX = 32;

/** Stands for "no override" in a column of a shared cell. */
const NONE: unique symbol = Symbol('none');

/**
 * A page layer shared by two PointExtentMaps over the same pages (`new PointExtentMap(eq, cells)`
 * twice): page -> a cell with one column per map, each map's override (a value, HOLE, or NONE).
 * Each map flushes, drops and clears only its own column; a cell goes when both columns are empty.
 */
export class PageCells {
  /**
   * @internal The cells: a pair table, column 0 its first values, column 1 its second (no object
   * per page: a million-page layer was a million more objects for the collector to promote).
   */
  readonly cells = new PageHash<unknown, unknown>(true);
  /** @internal Overrides held in each column (HOLE included). */
  readonly counts = [0, 0];
  /** @internal The maps of the columns handed out, in column order. */
  readonly maps: PointExtentMap<unknown>[] = [];
}

export class PointExtentMap<V> {
  private tree: ExtentMap<V>;
  /** Page -> its value, overriding the tree (HOLE: a gap). May repeat what the tree holds. */
  private readonly pts = new PageHash<V | typeof HOLE>();
  /**
   * The page set last (-1: none) and its value, overriding `pts` and the tree. A page's state is
   * changed several times in a row (a fault maps it, a conversion zaps it, the next fault maps it
   * again), and each of those is then a field store, not a hash-map update; `pts` takes the page
   * when another page is set. Unlike PageBytes' slot, `pts` may still hold an older value of the
   * slot's page: the slot overrides it, and unslot() overwrites it (no delete on every move).
   */
  private slotPage = -1;
  private slotValue: V | typeof HOLE = HOLE;
  private readonly eq: (a: V, b: V) => boolean;
  /** The shared layer this map is a column of (null: its own layer, `pts`), and which column. */
  private readonly shared: PageCells | null;
  private readonly col: number;
  /**
   * Shared layer: the pages this map has put in its column since its last flush (a page may come
   * twice, or after its override has gone), so that a flush or range edit of a column much smaller
   * than the layer visits its own pages, not every cell of the other map.
   */
  private pages: number[] = [];

  constructor(equals?: (a: V, b: V) => boolean, shared?: PageCells) {
    this.eq = equals ?? Object.is;
    this.tree = new ExtentMap<V>(equals);
    if (shared !== undefined && shared.maps.length >= 2)
      throw new Error('PageCells: a layer serves two maps');
    this.shared = shared ?? null;
    this.col = shared === undefined ? 0 : shared.maps.push(this as PointExtentMap<unknown>) - 1;
  }

  /** Overrides in this map's layer (its column of a shared one). */
  private layerSize(): number {
    return this.shared === null ? this.pts.size : this.shared.counts[this.col]!;
  }

  /** This map's override of page `index` in its shared column (NONE: none). */
  private cellGet(index: number): V | typeof HOLE | typeof NONE {
    const cells = this.shared!.cells;
    const e = cells.entryOf(index);
    if (e < 0) return NONE;
    return (this.col === 0 ? cells.valueAt(e) : cells.value2At(e)) as V | typeof HOLE | typeof NONE;
  }

  /** Drops this map's override of page `index` from its shared column. */
  private cellDrop(index: number): void {
    const sh = this.shared!;
    const cells = sh.cells;
    const e = cells.entryOf(index);
    if (e < 0) return;
    if (this.col === 0) {
      if (cells.valueAt(e) === NONE) return;
      cells.setValueAt(e, NONE);
    } else {
      if (cells.value2At(e) === NONE) return;
      cells.setValue2At(e, NONE);
    }
    sh.counts[this.col]!--;
    if (cells.valueAt(e) === NONE && cells.value2At(e) === NONE) cells.delete(index);
  }

  /**
   * Apply the layer to the tree, in page order, and empty it. The layer is read once in insertion
   * order (sequential memory) and radix-sorted by page with its values alongside, then handed to the
   * tree as one sorted run (ExtentMap.setPages: a run large against the tree rebuilds it).
   */
  private flush(): void {
    this.unslot();
    const n = this.layerSize();
    if (n === 0) return;
    if (
      this.shared !== null &&
      this.shared.maps.length === 2 &&
      this.walksLayer(this.col) &&
      this.walksLayer(1 - this.col)
    ) {
      PointExtentMap.flushBoth(this.shared);
      return;
    }
    let keys: Float64Array = new Float64Array(n);
    let vals = new Array<V | undefined>(n);
    if (this.shared === null) {
      let k = 0;
      this.pts.forEach((v, x) => {
        keys[k] = x;
        vals[k++] = v === HOLE ? undefined : v;
      });
      this.pts.clear();
    } else this.takeColumn(keys, vals);
    [keys, vals] = sortByPage(keys, vals);
    this.tree.setPages(keys, vals, n);
  }

  /**
   * Whether taking shared column `col` walks the whole layer (its map put pages in it at least a
   * quarter as often as the layer has cells) rather than looking up its own pages.
   */
  private walksLayer(col: number): boolean {
    const sh = this.shared!;
    return sh.maps[col]!.pages.length * 4 >= sh.cells.size;
  }

  /**
   * Flushes both columns of a shared layer at once, when each would walk the whole layer anyway
   * (a conversion trace leaves a million pages in both): one walk and one sort for the two maps,
   * then the layer is emptied whole.
   */
  private static flushBoth(sh: PageCells): void {
    const maps = sh.maps as [PointExtentMap<unknown>, PointExtentMap<unknown>];
    for (const m of maps) {
      m.unslot();
      m.pages = [];
    }
    const n = sh.cells.size;
    let keys: Float64Array = new Float64Array(n);
    let v0 = new Array<unknown>(n);
    let v1 = new Array<unknown>(n);
    let k = 0;
    // Per column: whether every cell holds a value (no NONE, no HOLE), so the sorted arrays go to
    // the map as they are.
    let plain0 = true;
    let plain1 = true;
    const cells = sh.cells;
    cells.forEachEntry((e, x) => {
      const c0 = cells.valueAt(e);
      const c1 = cells.value2At(e);
      keys[k] = x;
      v0[k] = c0;
      v1[k++] = c1;
      if (c0 === NONE || c0 === HOLE) plain0 = false;
      if (c1 === NONE || c1 === HOLE) plain1 = false;
    });
    sh.cells.clear();
    sh.counts[0] = 0;
    sh.counts[1] = 0;
    [keys, v0, v1] = sortByPage(keys, v0, v1);
    // Each column's overrides (NONE: none in that column) go to its map, in page order.
    for (const [m, vals, plain] of [
      [maps[0], v0, plain0],
      [maps[1], v1, plain1],
    ] as const) {
      if (plain) m.tree.setPages(keys, vals, n);
      else {
        const [ks, j] = compactOverrides(keys, vals, n);
        if (j > 0) m.tree.setPages(ks, vals, j);
      }
    }
  }

  /** Moves this map's shared column into keys/vals (layer order), leaving the column empty. */
  private takeColumn(keys: Float64Array, vals: (V | undefined)[]): void {
    const sh = this.shared!;
    const col = this.col;
    const other = sh.counts[1 - col]!;
    let k = 0;
    const cells = sh.cells;
    const take = (e: number, x: number): void => {
      const v = (col === 0 ? cells.valueAt(e) : cells.value2At(e)) as V | typeof HOLE | typeof NONE;
      if (v === NONE) return;
      keys[k] = x;
      vals[k++] = v === HOLE ? undefined : v;
      if (col === 0) cells.setValueAt(e, NONE);
      else cells.setValue2At(e, NONE);
      // PageHash.forEachEntry allows deleting the entry being visited.
      if (other !== 0 && cells.valueAt(e) === NONE && cells.value2At(e) === NONE) cells.delete(x);
    };
    // Walking the layer reads it in order; looking up this map's own pages is a hash lookup each,
    // worth it when they are few against the layer.
    if (!this.walksLayer(col)) {
      for (const x of this.pages) {
        const e = cells.entryOf(x);
        if (e >= 0) take(e, x);
      }
    } else cells.forEachEntry(take);
    // The other column empty too: no cell is left worth keeping.
    if (other === 0) sh.cells.clear();
    sh.counts[col] = 0;
    this.pages = [];
  }

  /** The slot's page goes into `pts`. */
  private unslot(): void {
    const p = this.slotPage;
    if (p < 0) return;
    if (this.shared === null) this.pts.set(p, this.slotValue);
    else this.cellPut(p, this.slotValue);
    this.slotPage = -1;
    this.slotValue = HOLE;
  }

  /** Writes this map's override of page `p` into its shared column. */
  private cellPut(p: number, v: V | typeof HOLE): void {
    const sh = this.shared!;
    const cells = sh.cells;
    const e = cells.entryOf(p);
    let was: unknown = NONE;
    if (e < 0) {
      if (this.col === 0) cells.add(p, v, NONE);
      else cells.add(p, NONE, v);
    } else if (this.col === 0) {
      was = cells.valueAt(e);
      cells.setValueAt(e, v);
    } else {
      was = cells.value2At(e);
      cells.setValue2At(e, v);
    }
    if (was !== NONE) return;
    sh.counts[this.col]!++;
    this.pages.push(p);
  }

  /** Drop the layer's pages in [start, end) (the caller is about to overwrite the range in the tree). */
  private dropLayer(start: number, end: number): void {
    if (this.slotPage >= start && this.slotPage < end) {
      this.slotPage = -1;
      this.slotValue = HOLE;
    }
    if (this.shared !== null) {
      if (this.shared.counts[this.col] === 0) return;
      if (end - start <= SCAN_MAX) for (let x = start; x < end; x++) this.cellDrop(x);
      else if (this.pages.length <= SCAN_MAX) {
        for (const x of this.pages) if (x >= start && x < end) this.cellDrop(x);
      } else this.flush();
      return;
    }
    const pts = this.pts;
    if (pts.size === 0) return;
    if (end - start <= SCAN_MAX) {
      for (let x = start; x < end; x++) pts.delete(x);
    } else if (pts.size <= SCAN_MAX) {
      pts.forEach((_, x) => {
        if (x >= start && x < end) pts.delete(x);
      });
    } else this.flush();
  }

  /** Number of (maximal) extents. Flushes: hot paths should ask isEmpty(). */
  get size(): number {
    this.flush();
    return this.tree.size;
  }

  /** True when no page holds a value; may answer false for a map whose values are all cleared in the layer. */
  isEmpty(): boolean {
    return this.tree.size === 0 && this.layerSize() === 0 && this.slotPage < 0;
  }

  /** Value at page `index`; undefined in a gap. */
  get(index: number): V | undefined {
    if (index === this.slotPage) {
      const v = this.slotValue;
      return v === HOLE ? undefined : v;
    }
    if (this.shared !== null) {
      const c = this.cellGet(index);
      if (c !== NONE) return c === HOLE ? undefined : c;
      return this.tree.get(index);
    }
    const p = this.pts.get(index);
    if (p !== undefined) return p === HOLE ? undefined : p;
    return this.tree.get(index);
  }

  /** Assign `value` to [start, end); undefined clears it. start >= end is a no-op. */
  set(start: number, end: number, value: V | undefined): void {
    if (end === start + 1 && start >= 0 && Number.isSafeInteger(end)) {
      // Overwrite, never delete (a clear is a HOLE): a page that churns (map, zap, map) ends as one
      // entry of `pts`, written when the slot moves on. The flush drops what the tree already holds.
      if (start !== this.slotPage) {
        this.unslot();
        this.slotPage = start;
      }
      this.slotValue = value === undefined ? HOLE : value;
      return;
    }
    // A bad range is refused by the tree (RangeError) before the layer loses anything.
    if (Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0) this.dropLayer(start, end);
    this.tree.set(start, end, value);
  }

  /**
   * Replace each maximal constant sub-range of [start, end) (gaps included, as undefined) by
   * fn(value, subStart, subEnd). All calls happen before the map changes.
   */
  update(
    start: number,
    end: number,
    fn: (value: V | undefined, start: number, end: number) => V | undefined,
  ): void {
    if (end === start + 1 && start >= 0 && Number.isSafeInteger(end)) {
      this.set(start, end, fn(this.get(start), start, end));
      return;
    }
    this.flush();
    this.tree.update(start, end, fn);
  }

  /** The whole extent containing `index`, unclipped. */
  extentAt(index: number): Extent<V> | undefined {
    this.flush();
    return this.tree.extentAt(index);
  }

  /** First extent with end > index (the one containing index, or the next one), unclipped. */
  nextExtent(index: number): Extent<V> | undefined {
    this.flush();
    return this.tree.nextExtent(index);
  }

  /** Extents (not gaps) intersecting [start, end), clipped to it, ascending. Snapshot semantics. */
  entries(start = -Infinity, end = Infinity): IterableIterator<Extent<V>> {
    this.flush();
    return this.tree.entries(start, end);
  }

  /** Covers [start, end) exactly, gaps as undefined values, ascending. Snapshot semantics. */
  segments(start: number, end: number): IterableIterator<Extent<V | undefined>> {
    this.flush();
    return this.tree.segments(start, end);
  }

  /** Does any extent intersecting [start, end) satisfy pred? */
  some(start: number, end: number, pred: (v: V) => boolean): boolean {
    this.flush();
    return this.tree.some(start, end, pred);
  }

  /** Does every sub-range of [start, end) satisfy pred (gaps passed as undefined)? */
  every(start: number, end: number, pred: (v: V | undefined) => boolean): boolean {
    if (end === start + 1) return pred(this.get(start));
    this.flush();
    return this.tree.every(start, end, pred);
  }

  /** Number of pages in [start, end) covered by extents (whose value satisfies pred). */
  count(start: number, end: number, pred?: (v: V) => boolean): number {
    this.flush();
    return this.tree.count(start, end, pred);
  }

  /**
   * O(1) copy (after the flush) sharing all nodes; neither side's later mutations affect the other.
   * The copy has a layer of its own, even if this map shares one.
   */
  clone(): PointExtentMap<V> {
    this.flush();
    const c = new PointExtentMap<V>(this.eq);
    c.tree = this.tree.clone();
    return c;
  }

  clear(): void {
    this.slotPage = -1;
    this.slotValue = HOLE;
    if (this.shared === null) this.pts.clear();
    else {
      // Taking the column empties it; the pages taken go with the tree.
      const n = this.layerSize();
      if (n > 0) this.takeColumn(new Float64Array(n), new Array<V | undefined>(n));
    }
    this.tree.clear();
  }

  /** ExtentMap.validate() of the flushed tree. */
  validate(): number {
    this.flush();
    return this.tree.validate();
  }
}

/**
 * A column's overrides among sorted keys[0, n) (NONE: none in this column; HOLE: a gap), moved to
 * the front of vals (as undefined for a gap) with their pages in a new array; and how many.
 */
function compactOverrides(keys: Float64Array, vals: unknown[], n: number): [Float64Array, number] {
  const ks = new Float64Array(n);
  let j = 0;
  // In chunks: a function run once for a million pages would run its loop unoptimized for long.
  for (let i = 0; i < n; i += CHUNK) j = compactChunk(keys, vals, ks, i, Math.min(n, i + CHUNK), j);
  return [ks, j];
}

/** Entries per compactChunk() call. */
const CHUNK = 4096;

function compactChunk(
  keys: Float64Array,
  vals: unknown[],
  ks: Float64Array,
  from: number,
  to: number,
  j: number,
): number {
  for (let i = from; i < to; i++) {
    const v = vals[i];
    if (v === NONE) continue;
    ks[j] = keys[i]!;
    vals[j++] = v === HOLE ? undefined : v;
  }
  return j;
}

/** Below this many pages the flush sorts by comparison. */
const RADIX_MIN = 4096;

/**
 * `keys` (distinct non-negative safe integers) ascending, with `vals` (and `vals2`, if given)
 * moved alongside: an LSD radix sort on 16-bit digits. The arrays passed in are reused (the result
 * may be either set).
 */
function sortByPage<T, U = never>(
  keysIn: Float64Array,
  valsIn: T[],
  vals2In?: U[],
): [Float64Array, T[], U[]] {
  const n = keysIn.length;
  // A small layer (a flow's step, an invariant check) is not worth the 64 Ki counters of a pass.
  if (n < RADIX_MIN) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => keysIn[a]! - keysIn[b]!);
    return [
      Float64Array.from(order, (i) => keysIn[i]!),
      order.map((i) => valsIn[i]!),
      vals2In === undefined ? [] : order.map((i) => vals2In[i]!),
    ];
  }
  let max = 0;
  for (let i = 0; i < n; i++) if (keysIn[i]! > max) max = keysIn[i]!;
  return max < 2 ** 32 ? sortU32(keysIn, valsIn, vals2In) : sortWide(keysIn, valsIn, vals2In, max);
}

/**
 * Pages below 2^32 (every page of a guest below 16 TiB): two passes on integer digits, both
 * histograms counted in one read, the keys carried as 32-bit words (half the bytes to move).
 */
function sortU32<T, U>(
  keysIn: Float64Array,
  valsIn: T[],
  vals2In: U[] | undefined,
): [Float64Array, T[], U[]] {
  const n = keysIn.length;
  const lo = new Uint32Array(1 << 16);
  const hi = new Uint32Array(1 << 16);
  const k32 = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const k = keysIn[i]! >>> 0;
    k32[i] = k;
    lo[k & 0xffff]!++;
    hi[k >>> 16]!++;
  }
  let sumLo = 0;
  let sumHi = 0;
  for (let d = 0; d < 65536; d++) {
    const a = lo[d]!;
    lo[d] = sumLo;
    sumLo += a;
    const b = hi[d]!;
    hi[d] = sumHi;
    sumHi += b;
  }
  const midKeys = new Uint32Array(n);
  const midVals = new Array<T>(n);
  // The second pass writes back into the arrays passed in. The passes are written out twice so
  // that a flush of one map (the usual one) moves no second array and tests no flag per entry.
  if (vals2In === undefined) {
    for (let i = 0; i < n; i++) {
      const k = k32[i]!;
      const at = lo[k & 0xffff]!++;
      midKeys[at] = k;
      midVals[at] = valsIn[i]!;
    }
    for (let i = 0; i < n; i++) {
      const k = midKeys[i]!;
      const at = hi[k >>> 16]!++;
      keysIn[at] = k;
      valsIn[at] = midVals[i]!;
    }
    return [keysIn, valsIn, []];
  }
  const midVals2 = new Array<U>(n);
  for (let i = 0; i < n; i++) {
    const k = k32[i]!;
    const at = lo[k & 0xffff]!++;
    midKeys[at] = k;
    midVals[at] = valsIn[i]!;
    midVals2[at] = vals2In[i]!;
  }
  for (let i = 0; i < n; i++) {
    const k = midKeys[i]!;
    const at = hi[k >>> 16]!++;
    keysIn[at] = k;
    valsIn[at] = midVals[i]!;
    vals2In[at] = midVals2[i]!;
  }
  return [keysIn, valsIn, vals2In];
}

/** Larger pages: as many passes as the largest key needs, digits taken in floating point. */
function sortWide<T, U>(
  keysIn: Float64Array,
  valsIn: T[],
  vals2In: U[] | undefined,
  max: number,
): [Float64Array, T[], U[]] {
  const n = keysIn.length;
  let keys = keysIn;
  let vals = valsIn;
  let vals2 = vals2In ?? [];
  let nextKeys: Float64Array = new Float64Array(n);
  let nextVals = new Array<T>(n);
  let nextVals2 = new Array<U>(vals2In === undefined ? 0 : n);
  const count = new Uint32Array(1 << 16);
  for (let shift = 1; shift <= max; shift *= 65536) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[Math.floor(keys[i]! / shift) & 0xffff]!++;
    let sum = 0;
    for (let d = 0; d < 65536; d++) {
      const c = count[d]!;
      count[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const key = keys[i]!;
      const at = count[Math.floor(key / shift) & 0xffff]!++;
      nextKeys[at] = key;
      nextVals[at] = vals[i]!;
      if (vals2In !== undefined) nextVals2[at] = vals2[i]!;
    }
    [keys, nextKeys] = [nextKeys, keys];
    [vals, nextVals] = [nextVals, vals];
    [vals2, nextVals2] = [nextVals2, vals2];
  }
  return [keys, vals, vals2];
}
