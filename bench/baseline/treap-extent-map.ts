/**
 * BENCHMARK BASELINE ONLY: a frozen copy of the persistent treap that src/ranges/extent-map.ts used
 * before the B+-tree rewrite, kept so bench/extent-map.ts can measure both in the same run. Nothing
 * in src/ or test/ imports it.
 */
/**
 * ExtentMap: half-open ranges of integer page indices -> values.
 *
 * Every piece of per-page state in the model (guest_memfd page cache, memory attributes, SPTEs,
 * RMP, S-EPT) lives in one of these, so a 4 TiB guest (2^30 pages) costs memory proportional to
 * the number of distinct extents, never to its size.
 *
 * Representation: a treap of maximal extents keyed by start. Two choices make it fit the model:
 *
 * - Priorities are a hash of the extent start (no randomness: the project is deterministic). With a
 *   total order on priorities a treap's shape is a function of its key set, so equal maps have
 *   equal trees whatever history built them, and depth is O(log n) expected even for sequential
 *   inserts.
 * - Nodes are persistent (path copying), which makes `clone()` O(1) for the explorer's branching.
 *   To avoid paying an allocation per visited node when nothing is shared, each node carries the
 *   epoch of the map that created it: a map edits its own nodes in place and copies the others.
 *   `clone()` (and any iterator) gives the map a fresh epoch, which freezes every existing node.
 *
 * Adjacent extents with equal values (per `equals`) are always merged, so the extent list, and
 * hence `size` and the tree shape, is canonical.
 */

/** One maximal run of pages [start, end) holding the same value. */
export interface Extent<V> {
  readonly start: number;
  readonly end: number;
  readonly value: V;
}

/** Tree node. Kept to seven fields: no subtree sizes (count is O(log n + k) by walking). */
class Node<V> {
  constructor(
    public start: number,
    public end: number,
    public value: V,
    public left: Node<V> | null,
    public right: Node<V> | null,
    /** hash(start): recomputed whenever start changes so the shape stays canonical. */
    public prio: number,
    /** Owner epoch: only the map whose current epoch matches may edit this node in place. */
    public epoch: number,
  ) {}
}

type AnyNode = Node<unknown>;

const TWO_32 = 4294967296;

/** Deterministic 30-bit priority for an extent starting at `x` (murmur3 fmix32 over both halves). */
function prioOf(x: number): number {
  let h = (x >>> 0) ^ Math.imul(Math.floor(x / TWO_32) | 0, 0x9e3779b1) ^ 0x5bd1e995;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  // 30 bits: stays a V8 small integer (a full uint32 would be boxed as a heap number per node).
  return (h ^ (h >>> 16)) >>> 2;
}

let epochCounter = 0;
function freshEpoch(): number {
  epochCounter += 1;
  return epochCounter;
}

/** The node itself if `epoch` owns it, else a copy owned by `epoch` (the path-copying step). */
function own<V>(n: Node<V>, epoch: number): Node<V> {
  return n.epoch === epoch ? n : new Node(n.start, n.end, n.value, n.left, n.right, n.prio, epoch);
}

// split() returns its left half and leaves the right half here: a second return value without
// allocating a tuple per level. split/merge never call user code, so this cannot be re-entered.
let splitRight: AnyNode | null = null;
// The extent split() cut in two, if any: its old end (-1: none) and value. split() keeps the left
// piece in place and leaves the right piece [x, cutEnd) to the caller, because the piece has a new
// start, hence a new priority that may belong above nodes split() has already re-hung.
let cutEnd = -1;
let cutValue: unknown;

/**
 * Split `t` at page `x` into extents below x (returned) and at or above x (left in splitRight),
 * minus the right piece of a straddling extent (reported in cutEnd/cutValue). O(depth).
 */
function split<V>(t: Node<V> | null, x: number, epoch: number): Node<V> | null {
  if (t === null) {
    splitRight = null;
    return null;
  }
  if (t.end <= x) {
    const l = split(t.right, x, epoch);
    if (l !== t.right) {
      t = own(t, epoch);
      t.right = l;
    }
    return t;
  }
  if (t.start >= x) {
    const l = split(t.left, x, epoch);
    const r = splitRight as Node<V> | null;
    if (r !== t.left) {
      t = own(t, epoch);
      t.left = r;
    }
    splitRight = t;
    return l;
  }
  // t.start < x < t.end: keep [start, x) where it is (same start, same priority).
  cutEnd = t.end;
  cutValue = t.value;
  splitRight = t.right;
  const n = own(t, epoch);
  n.end = x;
  n.right = null;
  return n;
}

/** Join two treaps where every extent of `a` lies below every extent of `b`. O(depth). */
function merge<V>(a: Node<V> | null, b: Node<V> | null, epoch: number): Node<V> | null {
  if (a === null) return b;
  if (b === null) return a;
  // Ties go to the lower start (a), which makes the priority order total.
  if (a.prio >= b.prio) {
    const r = merge(a.right, b, epoch);
    const n = own(a, epoch);
    n.right = r;
    return n;
  }
  const l = merge(a, b.left, epoch);
  const n = own(b, epoch);
  n.left = l;
  return n;
}

function countNodes(n: AnyNode | null): number {
  let c = 0;
  while (n !== null) {
    c += 1 + countNodes(n.left);
    n = n.right;
  }
  return c;
}

/** Treap from ascending, non-overlapping fresh nodes in O(m) (Cartesian-tree construction). */
function buildTreap<V>(nodes: Node<V>[]): Node<V> | null {
  const stack: Node<V>[] = [];
  for (const n of nodes) {
    let last: Node<V> | null = null;
    while (stack.length > 0 && stack[stack.length - 1]!.prio < n.prio) last = stack.pop()!;
    n.left = last;
    if (stack.length > 0) stack[stack.length - 1]!.right = n;
    stack.push(n);
  }
  return stack.length > 0 ? stack[0]! : null;
}

/** Does any extent of `n` intersecting [lo, hi) satisfy pred? In-order, stops at the first hit. */
function someIn<V>(n: Node<V> | null, lo: number, hi: number, pred: (v: V) => boolean): boolean {
  while (n !== null) {
    if (n.end <= lo) n = n.right;
    else if (n.start >= hi) n = n.left;
    else {
      if (n.left !== null && someIn(n.left, lo, hi, pred)) return true;
      if (pred(n.value)) return true;
      n = n.right;
    }
  }
  return false;
}

/** Pages of [lo, hi) covered by extents of `n` (satisfying pred, if given). */
function countIn<V>(
  n: Node<V> | null,
  lo: number,
  hi: number,
  pred: ((v: V) => boolean) | undefined,
): number {
  let c = 0;
  while (n !== null) {
    if (n.end <= lo) n = n.right;
    else if (n.start >= hi) n = n.left;
    else {
      if (n.left !== null) c += countIn(n.left, lo, hi, pred);
      if (pred === undefined || pred(n.value)) c += Math.min(n.end, hi) - Math.max(n.start, lo);
      n = n.right;
    }
  }
  return c;
}

/**
 * In-order walk of [lo, hi) that also reports the gaps: the shared core of every() and update().
 * A class rather than closures so a walk allocates one object, not one per node.
 */
abstract class SegmentWalk<V> {
  protected pos: number;
  constructor(
    protected readonly lo: number,
    protected readonly hi: number,
  ) {
    this.pos = lo;
  }
  /** Called once per maximal constant sub-range; return false to stop the walk. */
  protected abstract visit(start: number, end: number, value: V | undefined): boolean;

  run(root: Node<V> | null): boolean {
    if (!this.walk(root)) return false;
    return this.pos < this.hi ? this.visit(this.pos, this.hi, undefined) : true;
  }

  private walk(n: Node<V> | null): boolean {
    const lo = this.lo;
    const hi = this.hi;
    while (n !== null) {
      if (n.end <= lo) n = n.right;
      else if (n.start >= hi) n = n.left;
      else {
        if (n.left !== null && !this.walk(n.left)) return false;
        const s = Math.max(n.start, lo);
        const e = Math.min(n.end, hi);
        if (s > this.pos && !this.visit(this.pos, s, undefined)) return false;
        if (!this.visit(s, e, n.value)) return false;
        this.pos = e;
        n = n.right;
      }
    }
    return true;
  }
}

class EveryWalk<V> extends SegmentWalk<V> {
  constructor(
    lo: number,
    hi: number,
    private readonly pred: (v: V | undefined) => boolean,
  ) {
    super(lo, hi);
  }
  protected visit(_s: number, _e: number, value: V | undefined): boolean {
    return this.pred(value);
  }
}

/** Collects segments into parallel arrays (no per-segment objects) for update(). */
class CollectWalk<V> extends SegmentWalk<V> {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly values: (V | undefined)[] = [];
  protected visit(s: number, e: number, value: V | undefined): boolean {
    this.starts.push(s);
    this.ends.push(e);
    this.values.push(value);
    return true;
  }
}

function toExtent<V>(n: Node<V>): Extent<V> {
  return { start: n.start, end: n.end, value: n.value };
}

function* extentsIn<V>(root: Node<V> | null, lo: number, hi: number): Generator<Extent<V>, void, undefined> {
  if (!(lo < hi)) return;
  const stack: Node<V>[] = [];
  let n = root;
  for (;;) {
    while (n !== null) {
      if (n.end <= lo) n = n.right;
      else if (n.start >= hi) n = n.left;
      else {
        stack.push(n);
        n = n.left;
      }
    }
    const top = stack.pop();
    if (top === undefined) return;
    yield {
      start: Math.max(top.start, lo),
      end: Math.min(top.end, hi),
      value: top.value,
    };
    n = top.right;
  }
}

function* segmentsIn<V>(
  root: Node<V> | null,
  lo: number,
  hi: number,
): Generator<Extent<V | undefined>, void, undefined> {
  let pos = lo;
  for (const e of extentsIn(root, lo, hi)) {
    if (e.start > pos) yield { start: pos, end: e.start, value: undefined };
    yield e;
    pos = e.end;
  }
  if (pos < hi) yield { start: pos, end: hi, value: undefined };
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
    throw new RangeError(`ExtentMap: bad page range [${start}, ${end})`);
  }
}

/**
 * A map from page ranges to values. `undefined` is never stored: it means "no extent" (a gap).
 * Callbacks (`update`'s fn, predicates) must not mutate the map they are called on; iterators may
 * (they walk a snapshot). With a custom `equals`, which of two equal values survives a merge is
 * unspecified.
 */
export class ExtentMap<V> {
  private root: Node<V> | null = null;
  private extents = 0;
  private epoch = freshEpoch();
  /** Iterators handed out and not yet finished (see track()). */
  private liveIterators = 0;
  private readonly eq: (a: V, b: V) => boolean;

  /** `equals` decides which neighbours merge; default `Object.is`. */
  constructor(equals?: (a: V, b: V) => boolean) {
    this.eq = equals ?? Object.is;
  }

  /** Number of (maximal) extents. */
  get size(): number {
    return this.extents;
  }

  /** Value at page `index`; undefined in a gap. */
  get(index: number): V | undefined {
    const n = this.find(index);
    return n === null ? undefined : n.value;
  }

  /** The whole extent containing `index`, unclipped. */
  extentAt(index: number): Extent<V> | undefined {
    const n = this.find(index);
    return n === null ? undefined : toExtent(n);
  }

  /** First extent with end > index (the one containing index, or the next one), unclipped. */
  nextExtent(index: number): Extent<V> | undefined {
    const n = this.firstEndingAfter(index);
    return n === null ? undefined : toExtent(n);
  }

  /** Assign `value` to [start, end); undefined clears it. start >= end is a no-op. */
  set(start: number, end: number, value: V | undefined): void {
    checkRange(start, end);
    if (start >= end) return;
    this.beforeMutation();
    if (value === undefined) {
      const n = this.firstEndingAfter(start);
      if (n === null || n.start >= end) return; // nothing to clear: do not copy any path
      this.splice(start, end, null, 0);
      return;
    }
    const eq = this.eq;
    const at = this.find(start);
    if (at !== null && at.end >= end && eq(at.value, value)) return; // already so: no-op
    let lo = start;
    let hi = end;
    const left = at !== null && at.start < start ? at : this.find(start - 1);
    if (left !== null && eq(left.value, value)) lo = left.start;
    const right = at !== null && at.end > end ? at : this.find(end);
    if (right !== null && eq(right.value, value)) hi = right.end;
    this.splice(lo, hi, new Node(lo, hi, value, null, null, prioOf(lo), this.epoch), 1);
  }

  /**
   * Replace each maximal constant sub-range of [start, end) (gaps included, as undefined) by
   * fn(value, subStart, subEnd). All calls happen before the map changes. O(log n + k).
   */
  update(
    start: number,
    end: number,
    fn: (value: V | undefined, start: number, end: number) => V | undefined,
  ): void {
    checkRange(start, end);
    if (start >= end) return;
    const walk = new CollectWalk<V>(start, end);
    walk.run(this.root);
    const { starts, ends, values } = walk;
    const eq = this.eq;
    const m = values.length;
    const next: (V | undefined)[] = new Array(m);
    let changed = false;
    for (let i = 0; i < m; i++) {
      const old = values[i];
      const v = fn(old, starts[i]!, ends[i]!);
      next[i] = v;
      if (!changed && (v === undefined ? old !== undefined : old === undefined || !eq(old, v)))
        changed = true;
    }
    if (!changed) return; // leave shared nodes shared
    this.beforeMutation();

    const epoch = this.epoch;
    const nodes: Node<V>[] = [];
    let last: Node<V> | null = null;
    for (let i = 0; i < m; i++) {
      const v = next[i];
      if (v === undefined) {
        last = null;
        continue;
      }
      if (last !== null && eq(last.value, v)) last.end = ends[i]!;
      else {
        last = new Node(starts[i]!, ends[i]!, v, null, null, 0, epoch);
        nodes.push(last);
      }
    }
    let lo = start;
    let hi = end;
    if (nodes.length > 0) {
      const first = nodes[0]!;
      if (first.start === start) {
        const l = this.find(start - 1);
        if (l !== null && eq(l.value, first.value)) first.start = lo = l.start;
      }
      const tail = nodes[nodes.length - 1]!;
      if (tail.end === end) {
        const r = this.find(end);
        if (r !== null && eq(r.value, tail.value)) tail.end = hi = r.end;
      }
      for (const n of nodes) n.prio = prioOf(n.start);
    }
    this.splice(lo, hi, buildTreap(nodes), nodes.length);
  }

  /** Extents (not gaps) intersecting [start, end), clipped to it, ascending. Snapshot semantics. */
  entries(start = -Infinity, end = Infinity): IterableIterator<Extent<V>> {
    this.liveIterators++;
    return this.track(extentsIn(this.root, start, end));
  }

  /** Covers [start, end) exactly, gaps as undefined values, ascending. Snapshot semantics. */
  segments(start: number, end: number): IterableIterator<Extent<V | undefined>> {
    this.liveIterators++;
    return this.track(segmentsIn(this.root, start, end));
  }

  /**
   * Snapshot semantics without freezing on every call: while an iterator is live, the first
   * mutation freezes the tree (so the iterator keeps walking the old nodes). An iterator that is
   * abandoned without finishing or return() keeps the count up: later mutations then freeze
   * first, which is still correct, only slower. Freezing on every iteration made each later edit
   * of a large map path-copy (an allocation per level), which dominated the fault path.
   */
  private *track<T>(it: Generator<T, void, undefined>): Generator<T, void, undefined> {
    try {
      yield* it;
    } finally {
      this.liveIterators--;
    }
  }

  /** Before a mutation: if an iterator may be walking the current nodes, stop editing them in place. */
  private beforeMutation(): void {
    if (this.liveIterators > 0) this.freeze();
  }

  /** Does any extent intersecting [start, end) satisfy pred? */
  some(start: number, end: number, pred: (v: V) => boolean): boolean {
    return start < end && someIn(this.root, start, end, pred);
  }

  /** Does every sub-range of [start, end) satisfy pred (gaps passed as undefined)? */
  every(start: number, end: number, pred: (v: V | undefined) => boolean): boolean {
    return start >= end || new EveryWalk<V>(start, end, pred).run(this.root);
  }

  /** Number of pages in [start, end) covered by extents (whose value satisfies pred). */
  count(start: number, end: number, pred?: (v: V) => boolean): number {
    return start < end ? countIn(this.root, start, end, pred) : 0;
  }

  /** O(1) copy sharing all nodes; neither side's later mutations affect the other. */
  clone(): ExtentMap<V> {
    const c = new ExtentMap<V>(this.eq);
    c.root = this.root;
    c.extents = this.extents;
    this.freeze();
    return c;
  }

  clear(): void {
    this.root = null;
    this.extents = 0;
  }

  /**
   * Debugging aid for tests and invariant checkers: throws if the tree is malformed (order,
   * overlap, unmerged equal neighbours, heap order, priorities, size). O(n). Returns the height.
   */
  validate(): number {
    let prev: Node<V> | null = null;
    let n = 0;
    const visit = (t: Node<V> | null, depth: number): number => {
      if (t === null) return depth;
      if (!(t.start < t.end) || t.value === undefined) throw new Error(`bad extent [${t.start}, ${t.end})`);
      if (t.prio !== prioOf(t.start)) throw new Error(`stale priority at ${t.start}`);
      if (t.left !== null && !(t.prio > t.left.prio)) throw new Error(`heap order (left) at ${t.start}`);
      if (t.right !== null && !(t.prio >= t.right.prio)) throw new Error(`heap order (right) at ${t.start}`);
      const hl = visit(t.left, depth + 1);
      if (prev !== null) {
        if (prev.end > t.start) throw new Error(`overlap at ${t.start}`);
        if (prev.end === t.start && this.eq(prev.value, t.value)) throw new Error(`unmerged at ${t.start}`);
      }
      prev = t;
      n += 1;
      return Math.max(hl, visit(t.right, depth + 1));
    };
    const height = visit(this.root, 0);
    if (n !== this.extents) throw new Error(`size ${this.extents} but ${n} extents`);
    return height;
  }

  private find(index: number): Node<V> | null {
    let n = this.root;
    while (n !== null) {
      if (index < n.start) n = n.left;
      else if (index >= n.end) n = n.right;
      else return n;
    }
    return null;
  }

  private firstEndingAfter(index: number): Node<V> | null {
    let n = this.root;
    let best: Node<V> | null = null;
    while (n !== null) {
      if (n.end > index) {
        best = n;
        n = n.left;
      } else n = n.right;
    }
    return best;
  }

  /** Make every current node shared, so later edits copy instead of writing in place. */
  private freeze(): void {
    if (this.root !== null) this.epoch = freshEpoch();
  }

  /**
   * Replace [lo, hi) by `mid` (a treap of `added` extents inside [lo, hi), already merged).
   *
   * Rather than splitting the whole tree twice and merging it back (five root-to-leaf passes),
   * descend to the highest node that intersects the range or that `mid` must sit above, and do
   * the split/merge work only in that subtree; ancestors are just path-copied. Expected cost:
   * one descent plus O(k) local work, plus one insert when an extent is cut at hi.
   */
  private splice(lo: number, hi: number, mid: Node<V> | null, added: number): void {
    const epoch = this.epoch;
    const mp = mid === null ? -1 : mid.prio;
    let parent: Node<V> | null = null;
    let parentRight = false;
    let t = this.root;
    while (t !== null) {
      let right: boolean;
      // Stay above mid on ties only when t is the lower start (the treap's tie rule).
      if (t.end <= lo && t.prio >= mp) right = true;
      else if (t.start >= hi && t.prio > mp) right = false;
      else break;
      const n = own(t, epoch);
      if (n !== t) {
        if (parent === null) this.root = n;
        else if (parentRight) parent.right = n;
        else parent.left = n;
      }
      parent = n;
      parentRight = right;
      t = right ? n.right : n.left;
    }

    cutEnd = -1;
    const a = split(t, lo, epoch);
    const loCutEnd = cutEnd;
    const loCutValue = cutValue as V;
    cutEnd = -1;
    const b = split(splitRight as Node<V> | null, hi, epoch);
    const c = splitRight as Node<V> | null;
    splitRight = null; // do not keep garbage reachable
    // The part of a cut extent beyond hi survives: cut at hi, or one extent straddling both ends.
    let pieceEnd = -1;
    let pieceValue: V | undefined;
    if (cutEnd >= 0) {
      pieceEnd = cutEnd;
      pieceValue = cutValue as V;
    } else if (loCutEnd > hi) {
      pieceEnd = loCutEnd;
      pieceValue = loCutValue;
    }
    cutValue = undefined;
    this.extents += added - countNodes(b);

    const sub = merge(merge(a, mid, epoch), c, epoch);
    if (parent === null) this.root = sub;
    else if (parentRight) parent.right = sub;
    else parent.left = sub;

    if (pieceEnd >= 0) {
      // Its new start has a new priority, which may belong anywhere up to the root.
      this.insert(new Node(hi, pieceEnd, pieceValue as V, null, null, prioOf(hi), epoch));
      this.extents += 1;
    }
  }

  /** Insert a fresh node whose range is free (no extent intersects it). O(depth). */
  private insert(node: Node<V>): void {
    const epoch = this.epoch;
    const key = node.start;
    const p = node.prio;
    let parent: Node<V> | null = null;
    let parentRight = false;
    let t = this.root;
    while (t !== null && (t.prio > p || (t.prio === p && t.start < key))) {
      const n = own(t, epoch);
      if (n !== t) {
        if (parent === null) this.root = n;
        else if (parentRight) parent.right = n;
        else parent.left = n;
      }
      parent = n;
      parentRight = key > n.start;
      t = parentRight ? n.right : n.left;
    }
    node.left = split(t, key, epoch); // never cuts: the node's range is free
    node.right = splitRight as Node<V> | null;
    splitRight = null;
    if (parent === null) this.root = node;
    else if (parentRight) parent.right = node;
    else parent.left = node;
  }
}
