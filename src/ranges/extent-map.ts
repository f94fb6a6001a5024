/**
 * ExtentMap: half-open ranges of integer page indices -> values.
 *
 * Every piece of per-page state in the model (guest_memfd page cache, memory attributes, SPTEs,
 * RMP, S-EPT) lives in one of these (the churning ones behind PointExtentMap's page layer), so a
 * 4 TiB guest (2^30 pages) costs memory proportional to the number of distinct extents, never to
 * its size.
 *
 * Representation: a persistent B+-tree of maximal extents ordered by start.
 *
 * - Leaves hold up to CAP extents in three parallel arrays (starts, ends, values): about 24 bytes
 *   per extent plus slack, instead of one ~80-byte object per extent, and a lookup touches a
 *   handful of nodes instead of ~50.
 * - Branches hold up to CAP children and their separator keys. keys[i] (i >= 1) separates kids[i-1]
 *   from kids[i]: every extent left of it ends at or before it, every extent right of it starts at
 *   or after it, so a descent by page index finds the only leaf that can contain that page.
 * - Every node except the root holds at least MIN entries; all leaves are at the same depth. The
 *   structure is deterministic (no randomness), but not canonical: two maps with equal contents may
 *   have different node boundaries depending on their histories.
 * - Nodes are persistent (copy-on-write), which makes `clone()` O(1) for the explorer's branching.
 *   Each node carries the epoch of the map that created it: a map edits its own nodes in place and
 *   copies the others. `clone()` gives the map a fresh epoch, which freezes every existing node.
 *
 * Adjacent extents with equal values (per `equals`) are always merged, so the extent list, and
 * hence `size`, is canonical.
 *
 * Mutations work as "replace region": set() and update() compute the final contents of a region
 * [A, B) that no extent straddles (at most three extents for set), then one recursive pass removes
 * every extent starting in [A, B), drops whole subtrees inside it, inserts the new extents, and
 * repairs overflowing or underfull nodes on the way back up. No user code (equals, callbacks) runs
 * during that pass, which is why it may use module-level scratch state.
 *
 * A sorted run of one-page sets (setPages(), PointExtentMap's flush) that is large against the map
 * is instead merged with the extents in one pass into new leaves and the tree built bottom up.
 *
 * Fast paths: the map remembers the leaf of its last descent and the separators around it (a
 * finger), so a lookup near the previous one skips the descent; and a mutation whose region lies
 * inside one leaf that the map owns, and leaves that leaf legally filled, edits it in place without
 * the general pass. An overflowing node shares entries with a sibling that has plenty of room,
 * else splits in halves; the last child of a node (where sequential appends land) is re-dealt into
 * full nodes, so sequential appends leave full leaves behind and random inserts leave them 2/3 to
 * 3/4 full.
 */

/** One maximal run of pages [start, end) holding the same value. */
export interface Extent<V> {
  readonly start: number;
  readonly end: number;
  readonly value: V;
}

/** Most entries in a node: extents in a leaf, children in a branch. */
const CAP = 64;
/** Fewest entries in a node other than the root. Must stay below CAP / 2 - 2 (see redistribute). */
const MIN = 16;
/**
 * An overflowing node (not the last child) shares entries with a sibling only if both together
 * hold at most this many, so that each ends at most ~13/16 full; otherwise it splits in halves.
 * Sharing with a nearly full sibling re-deals two nodes (and allocates one) every few inserts:
 * random inserts then cost far more in copying than the fuller leaves save.
 */
const SHARE_MAX = CAP + CAP / 2 + CAP / 8;

// Nodes declare their fields and assign them in the constructor: ES2022 class fields (what
// parameter properties compile to here) would define each field as undefined first, then store it.
class Leaf<V> {
  /** Owner epoch: only the map whose current epoch matches may edit this node in place. */
  declare epoch: number;
  declare n: number;
  declare starts: number[];
  declare ends: number[];
  /** Slots at and beyond n are kept undefined, so dropped values are not kept alive. */
  declare vals: (V | undefined)[];
  constructor(epoch: number, n: number, starts: number[], ends: number[], vals: (V | undefined)[]) {
    this.epoch = epoch;
    this.n = n;
    this.starts = starts;
    this.ends = ends;
    this.vals = vals;
  }
}

class Branch<V> {
  declare epoch: number;
  declare n: number;
  /** Separators; keys[0] is never used by searches. */
  declare keys: number[];
  declare kids: Node<V>[];
  constructor(epoch: number, n: number, keys: number[], kids: Node<V>[]) {
    this.epoch = epoch;
    this.n = n;
    this.keys = keys;
    this.kids = kids;
  }
}

type Node<V> = Leaf<V> | Branch<V>;

/** Filler for unused child slots (keeps the kids arrays free of holes and of stale children). */
const NIL: Leaf<never> = new Leaf<never>(0, 0, [], [], []);

let epochCounter = 0;
function freshEpoch(): number {
  epochCounter += 1;
  return epochCounter;
}

// ---------------------------------------------------------------------------------------------
// Mutation context. A mutation sets these, then runs replaceIn(), which calls no user code.

/** Epoch of the map being mutated: nodes with this epoch are edited in place. */
let E = 0;
/** The region being replaced: every extent starting in [RA, RB) goes, and none straddles either end. */
let RA = 0;
let RB = 0;
/** The new extents of the region, ascending, inside [RA, RB), already merged. */
let IS: number[] = [];
let IE: number[] = [];
let IV: unknown[] = [];
let IM = 0;
/** Extents removed by the current pass. */
let removed = 0;

/** Scratch item arrays for set() (at most three items). */
const SS: number[] = [0, 0, 0];
const SE: number[] = [0, 0, 0];
const SV: unknown[] = [undefined, undefined, undefined];

// Results of seek(): index in the leaf of the last extent starting at or before x (-1: none), and
// the separators around the leaf on the path (its extents lie in [sBounds[0], sBounds[1])).
let sIdx = -1;
// The bounds live in a typed array: a module variable holding -Infinity, Infinity or a page from
// 2^31 on is a new heap number at every store, and finger lookups store them on every get().
const sBounds = new Float64Array([-Infinity, Infinity]);

/**
 * A node's page numbers (leaf starts and ends, branch separators) live in arrays of unboxed doubles
 * from the start: pages come from Float64Arrays (the page layers' flush) and reach 2^53, so V8 would
 * otherwise turn each new small-integer array into a double one at its first store (a copy per
 * array), and the tree would mix both kinds. The collector also copies a double array without
 * visiting its elements.
 */
function doubleArray(n: number): number[] {
  // A non-integer first makes the array's elements doubles; elements kinds never go back.
  return new Array<number>(n).fill(0.5).fill(0);
}

// Fresh node arrays are copies of these (never written): Array.prototype.fill() on a new array
// goes through the runtime and costs 2-4x a copy, which is a memcpy.
const ZEROS: readonly number[] = doubleArray(CAP);
const UNDEFS: readonly undefined[] = new Array<undefined>(CAP).fill(undefined);
const NILS: readonly Leaf<never>[] = new Array<Leaf<never>>(CAP).fill(NIL);

function numArray(): number[] {
  return ZEROS.slice();
}

/** A leaf's value slots, all undefined. */
function valArray<V>(): (V | undefined)[] {
  return UNDEFS.slice();
}

/*
 * A leaf that overflows by at most CAP entries (an insert into a full leaf: the usual split) moves
 * its entries to these spill arrays, and hands its own arrays to the next newLeaf(). Its parent
 * re-deals it right away, in the same pass, so per split only one Leaf object is allocated.
 */
const XS: number[] = doubleArray(2 * CAP);
const XE: number[] = doubleArray(2 * CAP);
const XV: unknown[] = new Array<unknown>(2 * CAP).fill(undefined);
let spilled = false;
let freeS: number[] | null = null;
let freeE: number[] = XS;
let freeV: unknown[] = XV;

function newLeaf<V>(): Leaf<V> {
  if (freeS !== null) {
    const l = new Leaf<V>(E, 0, freeS, freeE, freeV as (V | undefined)[]);
    freeS = null;
    return l;
  }
  return new Leaf<V>(E, 0, numArray(), numArray(), valArray<V>());
}

/** After a pass: drop the values the spill arrays still reference. */
function endPass(): void {
  if (spilled) {
    XV.fill(undefined);
    spilled = false;
  }
}

function newBranch<V>(): Branch<V> {
  return new Branch<V>(E, 0, numArray(), NILS.slice());
}

/** The node itself if the current epoch owns it, else a copy that it owns (copy-on-write). */
function own<V>(node: Node<V>, h: number): Node<V> {
  if (node.epoch === E) return node;
  if (h === 0) {
    const l = node as Leaf<V>;
    return new Leaf<V>(E, l.n, l.starts.slice(), l.ends.slice(), l.vals.slice());
  }
  const b = node as Branch<V>;
  return new Branch<V>(E, b.n, b.keys.slice(), b.kids.slice());
}

// ---------------------------------------------------------------------------------------------
// Searches inside a node.

/** Index of the child of a branch that may hold page x: the last i >= 1 with keys[i] <= x, else 0. */
function childIdx(keys: number[], n: number, x: number): number {
  let lo = 1;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The last child that may hold an extent starting below x: last i >= 1 with keys[i] < x, else 0. */
function childIdxBelow(keys: number[], n: number, x: number): number {
  let lo = 1;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Index of the last start <= x among starts[from, n), or from - 1. */
function lastLE(starts: number[], from: number, n: number, x: number): number {
  let lo = from;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/**
 * lastLE(starts, 0, n, x) given q, an index whose start is <= x (or -1): a few steps forward
 * before falling back to the binary search (a one-page edit is at q or next to it).
 */
function lastLEFrom(starts: number[], q: number, n: number, x: number): number {
  for (let step = 0; step < 4; step++) {
    if (q + 1 < n && starts[q + 1]! <= x) q++;
    else return q;
  }
  return lastLE(starts, q + 1, n, x);
}

/** Results of editRange(). */
let eI = 0;
let eJ = 0;

/**
 * The removal range [eI, eJ) of a leaf edit of [a, b): the extents starting in [a, b). `p` is the
 * index of the last start <= some x >= a (or -1), so eI is at most p + 1: found by stepping back
 * (a one-page edit removes at most a few extents), with a binary search for long ranges.
 */
function editRange(starts: number[], n: number, p: number, a: number, b: number): void {
  let i = p + 1;
  let k = 0;
  while (i > 0 && starts[i - 1]! >= a) {
    i--;
    if (++k === 4) {
      i = lowerBound(starts, 0, i, a);
      break;
    }
  }
  let j = i;
  k = 0;
  while (j < n && starts[j]! < b) {
    j++;
    if (++k === 4) {
      j = lowerBound(starts, j, n, b);
      break;
    }
  }
  eI = i;
  eJ = j;
}

/** Index of the first start >= x among starts[from, n), or n. */
function lowerBound(starts: number[], from: number, n: number, x: number): number {
  let lo = from;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index in a leaf of the first extent ending after x (n if none). */
function firstEndingAfter<V>(l: Leaf<V>, x: number): number {
  const p = lastLE(l.starts, 0, l.n, x);
  return p >= 0 && l.ends[p]! > x ? p : p + 1;
}

/** Descend to the leaf for page x; sets sIdx and sBounds. */
function seek<V>(root: Node<V>, height: number, x: number): Leaf<V> {
  let node = root;
  let lb = -Infinity;
  let ub = Infinity;
  for (let h = height; h > 0; h--) {
    const b = node as Branch<V>;
    const c = childIdx(b.keys, b.n, x);
    // Deeper separators are tighter.
    if (c > 0) lb = b.keys[c]!;
    if (c + 1 < b.n) ub = b.keys[c + 1]!;
    node = b.kids[c]!;
  }
  const l = node as Leaf<V>;
  sIdx = lastLE(l.starts, 0, l.n, x);
  sBounds[0] = lb;
  sBounds[1] = ub;
  return l;
}

/** Leftmost leaf of a subtree. */
function leftmost<V>(node: Node<V>, h: number): Leaf<V> {
  while (h > 0) {
    node = (node as Branch<V>).kids[0]!;
    h--;
  }
  return node as Leaf<V>;
}

function countExtents<V>(node: Node<V>, h: number): number {
  if (h === 0) return node.n;
  const b = node as Branch<V>;
  let c = 0;
  for (let i = 0; i < b.n; i++) c += countExtents(b.kids[i]!, h - 1);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The replace pass.

/** Replace the extents of a leaf that start in [RA, RB) by the items (if `items`). */
function leafReplace<V>(l: Leaf<V>, items: boolean): void {
  const i = lowerBound(l.starts, 0, l.n, RA);
  const j = lowerBound(l.starts, i, l.n, RB);
  removed += j - i;
  leafSplice(l, i, j, items ? IM : 0);
}

/** leafSplice() past CAP: the entries move to bigger arrays; the caller splits the leaf right away. */
function leafOverflow<V>(l: Leaf<V>, i: number, j: number, m: number, newN: number): void {
  const n = l.n;
  const st = l.starts;
  const en = l.ends;
  const va = l.vals;
  // Overflow: the parent (or replace(), for the root) splits this leaf right away.
  const small = newN <= 2 * CAP && !spilled && st.length === CAP;
  const s2 = small ? XS : new Array<number>(newN);
  const e2 = small ? XE : new Array<number>(newN);
  const v2 = small ? (XV as (V | undefined)[]) : new Array<V | undefined>(newN);
  for (let k = 0; k < i; k++) {
    s2[k] = st[k]!;
    e2[k] = en[k]!;
    v2[k] = va[k];
  }
  for (let k = 0; k < m; k++) {
    s2[i + k] = IS[k]!;
    e2[i + k] = IE[k]!;
    v2[i + k] = IV[k] as V;
  }
  for (let k = j, d = i + m - j; k < n; k++) {
    s2[k + d] = st[k]!;
    e2[k + d] = en[k]!;
    v2[k + d] = va[k];
  }
  if (small) {
    spilled = true;
    va.fill(undefined);
    freeS = st;
    freeE = en;
    freeV = va;
  }
  l.starts = s2;
  l.ends = e2;
  l.vals = v2;
  l.n = newN;
}

/** Replace entries [i, j) of a leaf by the first m items (IS, IE, IV). */
function leafSplice<V>(l: Leaf<V>, i: number, j: number, m: number): void {
  const n = l.n;
  const st = l.starts;
  const en = l.ends;
  const va = l.vals;
  const newN = n - (j - i) + m;
  if (newN > CAP) {
    leafOverflow(l, i, j, m, newN);
    return;
  }
  const d = m - (j - i);
  if (d < 0) {
    for (let k = j; k < n; k++) {
      st[k + d] = st[k]!;
      en[k + d] = en[k]!;
      va[k + d] = va[k];
    }
    for (let k = newN; k < n; k++) va[k] = undefined;
  } else if (d > 0) {
    for (let k = n - 1; k >= j; k--) {
      st[k + d] = st[k]!;
      en[k + d] = en[k]!;
      va[k + d] = va[k];
    }
  }
  for (let k = 0; k < m; k++) {
    st[i + k] = IS[k]!;
    en[i + k] = IE[k]!;
    va[i + k] = IV[k] as V;
  }
  l.n = newN;
}

/** Replace kids[x, y) of a branch (and their separators) by `k` pieces. */
function spliceKids<V>(
  P: Branch<V>,
  x: number,
  y: number,
  pieces: Node<V>[],
  pkeys: number[],
  k: number,
): void {
  const n = P.n;
  const keys = P.keys;
  const kids = P.kids;
  const newN = n - (y - x) + k;
  if (newN > CAP) {
    // Overflow: the caller's parent splits this branch right away.
    const k2 = new Array<number>(newN);
    const c2 = new Array<Node<V>>(newN);
    for (let q = 0; q < x; q++) {
      k2[q] = keys[q]!;
      c2[q] = kids[q]!;
    }
    for (let q = 0; q < k; q++) {
      k2[x + q] = pkeys[q]!;
      c2[x + q] = pieces[q]!;
    }
    for (let q = y, d = x + k - y; q < n; q++) {
      k2[q + d] = keys[q]!;
      c2[q + d] = kids[q]!;
    }
    P.keys = k2;
    P.kids = c2;
    P.n = newN;
    return;
  }
  const d = k - (y - x);
  if (d < 0) {
    for (let q = y; q < n; q++) {
      keys[q + d] = keys[q]!;
      kids[q + d] = kids[q]!;
    }
    for (let q = newN; q < n; q++) kids[q] = NIL;
  } else if (d > 0) {
    for (let q = n - 1; q >= y; q--) {
      keys[q + d] = keys[q]!;
      kids[q + d] = kids[q]!;
    }
  }
  for (let q = 0; q < k; q++) {
    keys[x + q] = pkeys[q]!;
    kids[x + q] = pieces[q]!;
  }
  P.n = newN;
}

/**
 * Re-deal the entries of kids[x, y) of branch P (height h) evenly into as few fresh nodes as hold
 * them (none if they are all empty). Source nodes are only read, so they may be shared. A source
 * may be a one-child branch whose child is underfull (a deletion emptied everything around it):
 * once re-dealt next to other children, such a child is joined with a neighbour (fixDeficient).
 * With at least MIN entries in total every piece ends up with at least MIN: a single piece has
 * them all; with k >= 2 pieces each starts with more than CAP / 2 and loses at most one entry per
 * deficient source (at most three sources).
 */
function redistribute<V>(P: Branch<V>, h: number, x: number, y: number, leftFull = false): void {
  const kids = P.kids;
  let total = 0;
  for (let q = x; q < y; q++) total += kids[q]!.n;
  if (total === 0) {
    spliceKids<V>(P, x, y, [], [], 0);
    return;
  }
  const k = Math.ceil(total / CAP);
  // Piece sizes: even; or, with leftFull, full pieces and the rest (at least MIN) in the last one.
  const sizes = new Array<number>(k);
  const rest = total - (k - 1) * CAP;
  for (let p = 0; p < k; p++) {
    if (!leftFull) sizes[p] = Math.floor(total / k) + (p < total % k ? 1 : 0);
    else if (p < k - 1) sizes[p] = CAP;
    else sizes[p] = rest;
  }
  if (leftFull && rest < MIN) {
    sizes[k - 2] = CAP - (MIN - rest);
    sizes[k - 1] = MIN;
  }
  const pieces = new Array<Node<V>>(k);
  const pkeys = new Array<number>(k);
  let u = x; // source cursor: kids[u], entry w
  let w = 0;
  // The first source, if this epoch owns it, becomes the first piece: its entries are in place.
  // Its n changes only at the end, since later pieces may still read its tail.
  const first = kids[x]!;
  const reuse =
    first.epoch === E && (h === 1 ? (first as Leaf<V>).starts : (first as Branch<V>).keys).length === CAP;
  const firstN = first.n;
  if (h === 1) {
    for (let p = 0; p < k; p++) {
      const size = sizes[p]!;
      let L: Leaf<V>;
      let q0 = 0;
      if (p === 0 && reuse) {
        L = first as Leaf<V>;
        q0 = w = size < firstN ? size : firstN;
      } else L = newLeaf<V>();
      for (let q = q0; q < size; q++) {
        let src = kids[u] as Leaf<V>;
        while (w >= src.n) {
          u++;
          w = 0;
          src = kids[u] as Leaf<V>;
        }
        L.starts[q] = src.starts[w]!;
        L.ends[q] = src.ends[w]!;
        L.vals[q] = src.vals[w];
        w++;
      }
      if (p > 0 || !reuse) L.n = size;
      pieces[p] = L;
      pkeys[p] = p === 0 ? P.keys[x]! : L.starts[0]!;
    }
    if (reuse) {
      const L = first as Leaf<V>;
      for (let q = sizes[0]!; q < firstN; q++) L.vals[q] = undefined;
      L.n = sizes[0]!;
    }
  } else {
    for (let p = 0; p < k; p++) {
      const size = sizes[p]!;
      let B: Branch<V>;
      let q0 = 0;
      if (p === 0 && reuse) {
        B = first as Branch<V>;
        q0 = w = size < firstN ? size : firstN;
      } else B = newBranch<V>();
      for (let q = q0; q < size; q++) {
        let src = kids[u] as Branch<V>;
        while (w >= src.n) {
          u++;
          w = 0;
          src = kids[u] as Branch<V>;
        }
        // A source's first child is separated from what precedes it by the source's own separator.
        B.keys[q] = w === 0 ? P.keys[u]! : src.keys[w]!;
        B.kids[q] = src.kids[w]!;
        w++;
      }
      if (p > 0 || !reuse) B.n = size;
      pieces[p] = B;
      pkeys[p] = p === 0 ? P.keys[x]! : B.keys[0]!;
    }
    if (reuse) {
      const B = first as Branch<V>;
      for (let q = sizes[0]!; q < firstN; q++) B.kids[q] = NIL;
      B.n = sizes[0]!;
    }
  }
  spliceKids(P, x, y, pieces, pkeys, k);
  if (h >= 2) for (let p = 0; p < k; p++) fixDeficient(pieces[p] as Branch<V>, h - 1);
}

/** Join every underfull child of a fresh branch X (height h) with a neighbour, while X has two. */
function fixDeficient<V>(X: Branch<V>, h: number): void {
  let t = X.n - 1;
  while (t >= 0 && X.n >= 2) {
    if (t >= X.n) t = X.n - 1;
    if (X.kids[t]!.n < MIN) {
      const u = t > 0 ? t - 1 : 0;
      redistribute(X, h, u, u + 2);
      t = u; // the joined node may still be underfull if both were
    } else t--;
  }
}

/**
 * The replace pass over an owned node of height h. Afterwards the node may overflow or be underfull
 * (the parent repairs it); if it is a branch with two or more children, all of them are within
 * [MIN, CAP]. Items go down the path of RA only.
 */
function replaceIn<V>(node: Node<V>, h: number, items: boolean): void {
  if (h === 0) {
    leafReplace(node as Leaf<V>, items);
    return;
  }
  const P = node as Branch<V>;
  const ci = childIdx(P.keys, P.n, RA);
  const cj = childIdxBelow(P.keys, P.n, RB);
  const c = own(P.kids[ci]!, h - 1);
  P.kids[ci] = c;
  replaceIn(c, h - 1, items);
  let y = ci + 1;
  if (cj > ci) {
    const d = own(P.kids[cj]!, h - 1);
    P.kids[cj] = d;
    replaceIn(d, h - 1, false);
    // d keeps only extents starting at or after RB; everything left of it now ends by RB.
    P.keys[cj] = RB;
    if (cj > ci + 1) {
      for (let q = ci + 1; q < cj; q++) removed += countExtents(P.kids[q]!, h - 1);
      spliceKids<V>(P, ci + 1, cj, [], [], 0);
    }
    y = ci + 2;
  }
  let bad = false;
  for (let q = ci; q < y; q++) {
    const s = P.kids[q]!.n;
    if (s < MIN || s > CAP) bad = true;
  }
  if (!bad) return;
  let x = ci;
  const cn = P.kids[ci]!.n;
  if (y === ci + 1 && cn > CAP) {
    // One child overflows. Share with a sibling that has plenty of room (SHARE_MAX); else split
    // it in halves. At the right edge (the last child: where sequential appends land) it shares
    // with a left sibling that has room at all and pieces are filled from the left, so appends leave
    // full nodes behind and split about once per CAP / 2 of them.
    const last = ci + 1 === P.n;
    if (ci > 0 && P.kids[ci - 1]!.n + cn <= (last ? 2 * CAP : SHARE_MAX)) x--;
    else if (!last && P.kids[ci + 1]!.n + cn <= SHARE_MAX) y++;
    redistribute(P, h, x, y, last);
    return;
  }
  if (P.n > y - x) {
    // Take a neighbour along: it lends entries to an underfull node and absorbs part of an overflow.
    if (x > 0) x--;
    else y++;
  }
  redistribute(P, h, x, y);
}

// ---------------------------------------------------------------------------------------------
// Read-only walks.

function someIn<V>(node: Node<V>, h: number, lo: number, hi: number, pred: (v: V) => boolean): boolean {
  if (h === 0) {
    const l = node as Leaf<V>;
    for (let i = firstEndingAfter(l, lo); i < l.n && l.starts[i]! < hi; i++)
      if (pred(l.vals[i] as V)) return true;
    return false;
  }
  const b = node as Branch<V>;
  const last = childIdxBelow(b.keys, b.n, hi);
  for (let c = childIdx(b.keys, b.n, lo); c <= last; c++)
    if (someIn(b.kids[c]!, h - 1, lo, hi, pred)) return true;
  return false;
}

function countIn<V>(
  node: Node<V>,
  h: number,
  lo: number,
  hi: number,
  pred: ((v: V) => boolean) | undefined,
): number {
  let total = 0;
  if (h === 0) {
    const l = node as Leaf<V>;
    for (let i = firstEndingAfter(l, lo); i < l.n && l.starts[i]! < hi; i++) {
      if (pred === undefined || pred(l.vals[i] as V)) {
        const s = l.starts[i]!;
        const e = l.ends[i]!;
        total += (e < hi ? e : hi) - (s > lo ? s : lo);
      }
    }
    return total;
  }
  const b = node as Branch<V>;
  const last = childIdxBelow(b.keys, b.n, hi);
  for (let c = childIdx(b.keys, b.n, lo); c <= last; c++) total += countIn(b.kids[c]!, h - 1, lo, hi, pred);
  return total;
}

/** In-order visit of the extents intersecting [lo, hi), unclipped; a false return stops the walk. */
abstract class Visitor<V> {
  constructor(
    protected readonly lo: number,
    protected readonly hi: number,
  ) {}
  protected abstract visit(start: number, end: number, value: V): boolean;

  walk(node: Node<V>, h: number): boolean {
    const lo = this.lo;
    const hi = this.hi;
    if (h === 0) {
      const l = node as Leaf<V>;
      for (let i = firstEndingAfter(l, lo); i < l.n && l.starts[i]! < hi; i++)
        if (!this.visit(l.starts[i]!, l.ends[i]!, l.vals[i] as V)) return false;
      return true;
    }
    const b = node as Branch<V>;
    const last = childIdxBelow(b.keys, b.n, hi);
    for (let c = childIdx(b.keys, b.n, lo); c <= last; c++) if (!this.walk(b.kids[c]!, h - 1)) return false;
    return true;
  }
}

/** every(): sub-ranges of [lo, hi), gaps as undefined, until pred fails. */
class EveryWalk<V> extends Visitor<V> {
  private pos: number;
  constructor(
    lo: number,
    hi: number,
    private readonly pred: (v: V | undefined) => boolean,
  ) {
    super(lo, hi);
    this.pos = lo;
  }
  protected visit(start: number, end: number, value: V): boolean {
    if (start > this.pos && !this.pred(undefined)) return false;
    if (!this.pred(value)) return false;
    this.pos = end;
    return true;
  }
  run(root: Node<V> | null, h: number): boolean {
    if (root !== null && !this.walk(root, h)) return false;
    return this.pos < this.hi ? this.pred(undefined) : true;
  }
}

/** update(): the sub-ranges of [lo, hi) in parallel arrays, and the extents straddling its ends. */
class CollectWalk<V> extends Visitor<V> {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly values: (V | undefined)[] = [];
  private pos: number;
  /** Start and value of the extent straddling lo (leftStart < lo), if any. */
  leftStart: number;
  leftValue: V | undefined;
  /** End and value of the extent straddling hi (rightEnd > hi), if any. */
  rightEnd: number;
  rightValue: V | undefined;
  constructor(lo: number, hi: number) {
    super(lo, hi);
    this.pos = lo;
    this.leftStart = lo;
    this.rightEnd = hi;
  }
  protected visit(start: number, end: number, value: V): boolean {
    const lo = this.lo;
    const hi = this.hi;
    if (start < lo) {
      this.leftStart = start;
      this.leftValue = value;
      start = lo;
    } else if (start > this.pos) this.push(this.pos, start, undefined);
    if (end > hi) {
      this.rightEnd = end;
      this.rightValue = value;
      end = hi;
    }
    this.push(start, end, value);
    this.pos = end;
    return true;
  }
  /** After walk(): the gap at the end, if any. */
  finish(): void {
    if (this.pos < this.hi) this.push(this.pos, this.hi, undefined);
  }
  private push(s: number, e: number, v: V | undefined): void {
    this.starts.push(s);
    this.ends.push(e);
    this.values.push(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Iterators.

/** Live iterators created since the map's last freeze (see ExtentMap.entries). */
interface Tracker {
  live: number;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true as const, value: undefined });

/** A position in a snapshot of the tree: the path from the root and an index in a leaf. */
abstract class Walker<V, T> implements IterableIterator<T> {
  private readonly path: Branch<V>[] = [];
  private readonly at: number[] = [];
  protected leaf: Leaf<V> | null = null;
  protected i = 0;
  private started = false;

  constructor(
    private root: Node<V> | null,
    private readonly height: number,
    protected readonly lo: number,
    protected readonly hi: number,
    private tracker: Tracker | null,
  ) {}

  abstract next(): IteratorResult<T, undefined>;

  [Symbol.iterator](): this {
    return this;
  }

  return(): IteratorResult<T, undefined> {
    return this.end();
  }

  /** Position on the first extent ending after lo (leaf null: none). */
  protected start(): void {
    this.started = true;
    let node = this.root;
    if (node === null || !(this.lo < this.hi)) return;
    const lo = this.lo;
    for (let h = this.height, l = 0; h > 0; h--, l++) {
      const b = node as Branch<V>;
      const c = childIdx(b.keys, b.n, lo);
      this.path[l] = b;
      this.at[l] = c;
      node = b.kids[c]!;
    }
    this.leaf = node as Leaf<V>;
    this.i = firstEndingAfter(this.leaf, lo);
    if (this.i >= this.leaf.n) this.nextLeaf();
  }

  protected get begun(): boolean {
    return this.started;
  }

  /** Move past the current extent. */
  protected step(): void {
    this.i++;
    if (this.i >= this.leaf!.n) this.nextLeaf();
  }

  private nextLeaf(): void {
    for (let l = this.height - 1; l >= 0; l--) {
      const b = this.path[l]!;
      if (this.at[l]! + 1 < b.n) {
        this.at[l] = this.at[l]! + 1;
        let node = b.kids[this.at[l]!]!;
        for (let d = l + 1; d < this.height; d++) {
          this.path[d] = node as Branch<V>;
          this.at[d] = 0;
          node = (node as Branch<V>).kids[0]!;
        }
        this.leaf = node as Leaf<V>;
        this.i = 0;
        return;
      }
    }
    this.leaf = null;
  }

  protected end(): IteratorResult<T, undefined> {
    this.started = true;
    this.leaf = null;
    this.root = null;
    this.path.length = 0;
    if (this.tracker !== null) {
      this.tracker.live--;
      this.tracker = null;
    }
    return DONE;
  }
}

class EntriesIterator<V> extends Walker<V, Extent<V>> {
  next(): IteratorResult<Extent<V>, undefined> {
    if (!this.begun) this.start();
    const l = this.leaf;
    if (l === null) return this.end();
    const i = this.i;
    const s = l.starts[i]!;
    const hi = this.hi;
    if (!(s < hi)) return this.end();
    const e = l.ends[i]!;
    const value = l.vals[i] as V;
    this.step();
    const lo = this.lo;
    return { done: false, value: { start: s > lo ? s : lo, end: e < hi ? e : hi, value } };
  }
}

class SegmentsIterator<V> extends Walker<V, Extent<V | undefined>> {
  private pos = this.lo;
  next(): IteratorResult<Extent<V | undefined>, undefined> {
    if (!this.begun) this.start();
    const pos = this.pos;
    const hi = this.hi;
    if (!(pos < hi)) return this.end();
    const l = this.leaf;
    if (l !== null) {
      const i = this.i;
      const s = l.starts[i]!;
      if (s < hi) {
        if (s > pos) {
          this.pos = s;
          return { done: false, value: { start: pos, end: s, value: undefined } };
        }
        const e0 = l.ends[i]!;
        const e = e0 < hi ? e0 : hi;
        const value = l.vals[i] as V;
        this.step();
        this.pos = e;
        return { done: false, value: { start: pos, end: e, value } };
      }
    }
    this.pos = hi;
    return { done: false, value: { start: pos, end: hi, value: undefined } };
  }
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < 0) {
    throw new RangeError(`ExtentMap: bad page range [${start}, ${end})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Bulk page assignment (setPages): merge, then build the tree bottom up.

/** Below this many pages setPages() goes through set() one page at a time. */
const BULK_MIN = 64;
/**
 * setPages() rebuilds when the pages number at least 1/BULK_RATIO of the extents the map holds:
 * a rebuild costs ~0.1 us per extent, a one-page set() ~0.5-1 us (descent and splice).
 */
const BULK_RATIO = 8;

/**
 * Appends the leaves of a subtree, in order, to `out`; false if any node of it is not owned by
 * `epoch` (shared with a clone, or frozen for an iterator).
 */
function collectLeaves<V>(node: Node<V>, h: number, out: Leaf<V>[], epoch: number): boolean {
  let owned = node.epoch === epoch;
  if (h === 0) out.push(node as Leaf<V>);
  else {
    const b = node as Branch<V>;
    for (let i = 0; i < b.n; i++) owned = collectLeaves(b.kids[i]!, h - 1, out, epoch) && owned;
  }
  return owned;
}

/**
 * New leaves (epoch `epoch`) holding the extents of `leaves` with pages keys[0, n) (ascending) set
 * to vals (undefined: cleared), maximal, written straight into leaves filled as sequential appends
 * leave them: full, the last two evened out so that neither is below MIN. Null if no page changes.
 */
function mergePages<V>(
  leaves: Leaf<V>[],
  keys: ArrayLike<number>,
  vals: ArrayLike<V | undefined>,
  n: number,
  eq: (a: V, b: V) => boolean,
  epoch: number,
): Leaf<V>[] | null {
  const out: Leaf<V>[] = [];
  let changed = false;
  let cur = new Leaf<V>(epoch, 0, numArray(), numArray(), valArray<V>());
  let m = 0; // extents in cur
  let i = 0;
  // Appends [a, b) -> x, merged with the extent before it when they touch and agree (the last
  // extent is always in cur: a leaf is started only for an extent that does not merge).
  const emit = (a: number, b: number, x: V | undefined): void => {
    if (x === undefined) return;
    if (m > 0 && cur.ends[m - 1] === a && eq(cur.vals[m - 1] as V, x)) {
      cur.ends[m - 1] = b;
      return;
    }
    if (m === CAP) {
      cur.n = m;
      out.push(cur);
      cur = new Leaf<V>(epoch, 0, numArray(), numArray(), valArray<V>());
      m = 0;
    }
    cur.starts[m] = a;
    cur.ends[m] = b;
    cur.vals[m++] = x;
  };
  for (const l of leaves) {
    for (let c = 0; c < l.n; c++) {
      const s = l.starts[c]!;
      const e = l.ends[c]!;
      const v = l.vals[c];
      for (; i < n && keys[i]! < s; i++) {
        if (vals[i] !== undefined) changed = true;
        emit(keys[i]!, keys[i]! + 1, vals[i]);
      }
      let at = s;
      for (; i < n && keys[i]! < e; i++) {
        const k = keys[i]!;
        const x = vals[i];
        if (x === undefined || !eq(v as V, x)) changed = true;
        if (k > at) emit(at, k, v);
        emit(k, k + 1, x);
        at = k + 1;
      }
      if (at < e) emit(at, e, v);
    }
  }
  for (; i < n; i++) {
    if (vals[i] !== undefined) changed = true;
    emit(keys[i]!, keys[i]! + 1, vals[i]);
  }
  if (!changed) return null;
  if (m === 0) return out;
  cur.n = m;
  out.push(cur);
  const prev = out.length > 1 ? out[out.length - 2]! : undefined;
  if (prev !== undefined && m < MIN) {
    // prev is full: deal its last entries to the front of cur (CAP + m >= 2 * MIN).
    const move = Math.floor((CAP - m) / 2);
    cur.starts.copyWithin(move, 0, m);
    cur.ends.copyWithin(move, 0, m);
    cur.vals.copyWithin(move, 0, m);
    for (let j = 0; j < move; j++) {
      cur.starts[j] = prev.starts[CAP - move + j]!;
      cur.ends[j] = prev.ends[CAP - move + j]!;
      cur.vals[j] = prev.vals[CAP - move + j];
      prev.vals[CAP - move + j] = undefined;
    }
    prev.n = CAP - move;
    cur.n = m + move;
  }
  return out;
}

/** setPages(): keys[i] must be a page (with a safe end) above keys[i - 1]. */
function checkPage(keys: ArrayLike<number>, i: number): void {
  const k = keys[i]!;
  if (!Number.isSafeInteger(k) || k < 0 || !Number.isSafeInteger(k + 1) || (i > 0 && !(k > keys[i - 1]!)))
    throw new RangeError(`ExtentMap.setPages: bad or unordered page ${k} at ${i}`);
}

/** How many of `total` entries the i-th of `parts` nodes takes: as even as possible. */
function share(total: number, parts: number, i: number): number {
  const base = Math.floor(total / parts);
  return base + (i < total % parts ? 1 : 0);
}

/** The tree over `leaves` (in order, each legally filled): branch levels, each separator the first start of its child. */
function buildTree<V>(leaves: Leaf<V>[], epoch: number): { root: Node<V>; height: number } {
  let level: Node<V>[] = leaves;
  let firsts = leaves.map((l) => l.starts[0]!);
  let height = 0;
  while (level.length > 1) {
    const nodes = Math.ceil(level.length / CAP);
    const up: Node<V>[] = [];
    const upFirsts: number[] = [];
    for (let i = 0, at = 0; i < nodes; i++) {
      const k = share(level.length, nodes, i);
      const b = new Branch<V>(epoch, k, numArray(), NILS.slice());
      for (let j = 0; j < k; j++) {
        b.keys[j] = firsts[at + j]!;
        b.kids[j] = level[at + j]!;
      }
      up.push(b);
      upFirsts.push(firsts[at]!);
      at += k;
    }
    level = up;
    firsts = upFirsts;
    height++;
  }
  return { root: level[0]!, height };
}

/**
 * A map from page ranges to values. `undefined` is never stored: it means "no extent" (a gap).
 * Callbacks (`update`'s fn, predicates, `equals`) must not mutate the map they are called on;
 * iterators may (they walk a snapshot). With a custom `equals`, which of two equal values survives
 * a merge is unspecified.
 */
export class ExtentMap<V> {
  private root: Node<V> | null = null;
  /** Levels below the root: 0 when the root is a leaf. */
  private height = 0;
  private extents = 0;
  private epoch = freshEpoch();
  /** Iterators handed out since the last freeze (see entries()); null: none. */
  private tracker: Tracker | null = null;
  /**
   * Finger: the leaf of the last descent and the separators around it, so that lookups near the
   * previous one (sequential faults, a set next to a get) skip the descent. Dropped whenever a
   * mutation may replace nodes; an in-place leaf edit keeps it valid (separators do not move).
   */
  private fLeaf: Leaf<V> | null = null;
  private fLb = -Infinity;
  private fUb = Infinity;
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
    const root = this.root;
    if (root === null) return undefined;
    const l = this.leafFor(root, index);
    const p = sIdx;
    return p >= 0 && l.ends[p]! > index ? l.vals[p] : undefined;
  }

  /** seek() through the finger: the leaf for page x, with sIdx and sBounds set. */
  private leafFor(root: Node<V>, x: number): Leaf<V> {
    const f = this.fLeaf;
    if (f !== null && x >= this.fLb && x < this.fUb) {
      sIdx = lastLE(f.starts, 0, f.n, x);
      sBounds[0] = this.fLb;
      sBounds[1] = this.fUb;
      return f;
    }
    const l = seek(root, this.height, x);
    this.fLeaf = l;
    this.fLb = sBounds[0]!;
    this.fUb = sBounds[1]!;
    return l;
  }

  /** The whole extent containing `index`, unclipped. */
  extentAt(index: number): Extent<V> | undefined {
    const root = this.root;
    if (root === null) return undefined;
    const l = this.leafFor(root, index);
    const p = sIdx;
    return p >= 0 && l.ends[p]! > index
      ? { start: l.starts[p]!, end: l.ends[p]!, value: l.vals[p] as V }
      : undefined;
  }

  /** First extent with end > index (the one containing index, or the next one), unclipped. */
  nextExtent(index: number): Extent<V> | undefined {
    let node = this.root;
    if (node === null) return undefined;
    // The subtree right of the descent path at the deepest level that has one.
    let alt: Node<V> | null = null;
    let altH = 0;
    for (let h = this.height; h > 0; h--) {
      const b = node as Branch<V>;
      const c = childIdx(b.keys, b.n, index);
      if (c + 1 < b.n) {
        alt = b.kids[c + 1]!;
        altH = h - 1;
      }
      node = b.kids[c]!;
    }
    let l = node as Leaf<V>;
    let i = firstEndingAfter(l, index);
    if (i >= l.n) {
      if (alt === null) return undefined;
      l = leftmost(alt, altH);
      i = 0;
    }
    return { start: l.starts[i]!, end: l.ends[i]!, value: l.vals[i] as V };
  }

  /** Assign `value` to [start, end); undefined clears it. start >= end is a no-op. */
  set(start: number, end: number, value: V | undefined): void {
    checkRange(start, end);
    if (start >= end) return;
    const root = this.root;
    if (value === undefined) {
      if (root !== null) this.clearRange(root, start, end);
      return;
    }
    if (root === null) {
      SS[0] = start;
      SE[0] = end;
      SV[0] = value;
      this.replaceWith(start, end, SS, SE, SV, 1);
      return;
    }
    const eq = this.eq;
    const l = this.leafFor(root, start);
    const p = sIdx;
    const lb = sBounds[0]!;
    const ub = sBounds[1]!;
    const st = l.starts;
    const en = l.ends;

    // The extent holding start - 1 (it may also hold start), if any.
    let hasLeft = false;
    let ls = 0;
    let le = 0;
    let lv: V | undefined;
    let lookBefore = false; // it may sit in an earlier leaf
    if (p >= 0) {
      const ps = st[p]!;
      const pe = en[p]!;
      if (pe > start) {
        if (pe >= end && eq(l.vals[p] as V, value)) return; // already so: do not copy anything
        if (ps < start) {
          hasLeft = true;
          ls = ps;
          le = pe;
          lv = l.vals[p];
        } else if (p > 0) {
          if (en[p - 1] === start) {
            hasLeft = true;
            ls = st[p - 1]!;
            le = start;
            lv = l.vals[p - 1];
          }
        } else lookBefore = true;
      } else if (pe === start) {
        hasLeft = true;
        ls = ps;
        le = pe;
        lv = l.vals[p];
      }
    } else lookBefore = true;
    if (lookBefore && start > 0) {
      const l2 = this.leafFor(root, start - 1);
      const q = sIdx;
      if (q >= 0 && l2.ends[q]! >= start) {
        hasLeft = true;
        ls = l2.starts[q]!;
        le = l2.ends[q]!;
        lv = l2.vals[q];
      }
    }

    // The extent holding end, if any (it may also hold start).
    let hasRight = false;
    let rs = 0;
    let re = 0;
    let rv: V | undefined;
    if (end < ub) {
      const q = lastLEFrom(st, p, l.n, end);
      if (q >= 0 && en[q]! > end) {
        hasRight = true;
        rs = st[q]!;
        re = en[q]!;
        rv = l.vals[q];
      }
    } else {
      const l2 = this.leafFor(root, end);
      const q = sIdx;
      if (q >= 0 && l2.ends[q]! > end) {
        hasRight = true;
        rs = l2.starts[q]!;
        re = l2.ends[q]!;
        rv = l2.vals[q];
      }
    }

    // The region [a, b) that no extent straddles, and its new contents.
    let a = start;
    let b = end;
    let lo = start;
    let hi = end;
    let keepLeft = false;
    let keepRight = false;
    if (hasLeft) {
      if (eq(lv as V, value)) a = lo = ls;
      else if (le > start) {
        a = ls;
        keepLeft = true;
      }
    }
    if (hasRight) {
      if (eq(rv as V, value)) b = hi = re;
      else if (rs < end) {
        b = re;
        keepRight = true;
      }
    }
    let m = 0;
    if (keepLeft) {
      SS[0] = ls;
      SE[0] = start;
      SV[0] = lv;
      m = 1;
    }
    SS[m] = lo;
    SE[m] = hi;
    SV[m] = value;
    m++;
    if (keepRight) {
      SS[m] = end;
      SE[m] = re;
      SV[m] = rv;
      m++;
    }
    if (a >= lb && b <= ub && this.editLeaf(l, a, b, m, p)) return;
    this.replaceWith(a, b, SS, SE, SV, m);
  }

  /**
   * set(k, k + 1, v) for each page k of keys[0, n) in turn (v = vals[i]; undefined clears the page).
   * The keys must ascend strictly. A run that is large against the map is merged with its extents in
   * one pass and the tree rebuilt from the result (O(extents + n) instead of n descents and
   * splices: how PointExtentMap applies its page layer), unless the tree shares nodes with a clone.
   * A bad key or count throws RangeError, map unchanged.
   */
  setPages(keys: ArrayLike<number>, vals: ArrayLike<V | undefined>, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > keys.length || n > vals.length)
      throw new RangeError(`ExtentMap.setPages: bad count ${n} (${keys.length} keys, ${vals.length} values)`);
    for (let i = 0; i < n; i++) checkPage(keys, i);
    const leaves: Leaf<V>[] = [];
    // A tree sharing nodes with a clone keeps sharing them: one-page sets copy only the paths they
    // touch, a rebuild would copy everything.
    if (
      n < BULK_MIN ||
      n * BULK_RATIO < this.extents ||
      (this.root !== null && !collectLeaves(this.root, this.height, leaves, this.epoch))
    ) {
      for (let i = 0; i < n; i++) this.set(keys[i]!, keys[i]! + 1, vals[i]);
      return;
    }
    const out = mergePages(leaves, keys, vals, n, this.eq, this.epoch);
    if (out === null) return; // nothing changes: keep the tree as it is
    // Only new nodes: iterators and clones keep the old ones, so nothing needs freezing.
    this.fLeaf = null;
    this.tracker = null;
    let m = 0;
    for (const l of out) m += l.n;
    this.extents = m;
    if (m === 0) {
      this.root = null;
      this.height = 0;
      return;
    }
    const t = buildTree(out, this.epoch);
    this.root = t.root;
    this.height = t.height;
  }

  /**
   * Fast path of a replace that stays inside leaf l (whose extents lie in [a, b) and whose
   * separators enclose [a, b)): if the map owns l (hence its whole path) and the leaf keeps a legal
   * fill, edit it in place without a second descent. Returns false if the general pass is needed.
   * `p` is the index in l of the last start <= some page x >= a (-1: none; -2: not known).
   */
  private editLeaf(
    l: Leaf<V>,
    a: number,
    b: number,
    m: number,
    p: number,
    ss: number[] = SS,
    se: number[] = SE,
    sv: unknown[] = SV,
  ): boolean {
    if (l.epoch !== this.epoch) return false;
    const t = this.tracker;
    if (t !== null && t.live > 0) return false;
    const n = l.n;
    let i: number;
    let j: number;
    if (p >= -1) {
      editRange(l.starts, n, p, a, b);
      i = eI;
      j = eJ;
    } else {
      i = lowerBound(l.starts, 0, n, a);
      j = lowerBound(l.starts, i, n, b);
    }
    const newN = n - (j - i) + m;
    if (newN > CAP || newN === 0 || (newN < MIN && this.height > 0)) return false;
    IS = ss;
    IE = se;
    IV = sv;
    leafSplice(l, i, j, m);
    this.extents += m - (j - i);
    IS = IE = SS;
    IV = SV;
    SV[0] = SV[1] = SV[2] = undefined;
    return true;
  }

  /** set(start, end, undefined) on a non-empty map. */
  private clearRange(root: Node<V>, start: number, end: number): void {
    const l = this.leafFor(root, start);
    const p = sIdx;
    const lb = sBounds[0]!;
    const ub = sBounds[1]!;
    let a = start;
    let b = end;
    let m = 0;
    if (p >= 0 && l.ends[p]! > start) {
      if (l.starts[p]! < start) {
        SS[0] = l.starts[p]!;
        SE[0] = start;
        SV[0] = l.vals[p];
        a = l.starts[p]!;
        m = 1;
      }
    } else if (p + 1 < l.n) {
      if (l.starts[p + 1]! >= end) return; // nothing to clear: do not copy any path
    } else if (ub >= end) return;
    else {
      const next = this.nextExtent(start);
      if (next === undefined || next.start >= end) return;
    }
    // The extent holding end, if it started before end, keeps its part from end on.
    const l2 = end < ub ? l : this.leafFor(root, end);
    const q = end < ub ? lastLEFrom(l.starts, p, l.n, end) : sIdx;
    if (q >= 0 && l2.ends[q]! > end && l2.starts[q]! < end) {
      SS[m] = end;
      SE[m] = l2.ends[q]!;
      SV[m] = l2.vals[q];
      b = l2.ends[q]!;
      m++;
    }
    if (a >= lb && b <= ub && this.editLeaf(l, a, b, m, p)) return;
    this.replaceWith(a, b, SS, SE, SV, m);
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
    const root = this.root;
    // Most updates stay inside one leaf: collect from it directly, and edit it in place below.
    let l: Leaf<V> | null = null;
    let lb = 0;
    let ub = 0;
    if (root !== null) {
      l = this.leafFor(root, start);
      lb = sBounds[0]!;
      ub = sBounds[1]!;
      if (end <= ub) walk.walk(l, 0);
      else walk.walk(root, this.height);
    }
    walk.finish();
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

    // New contents of [a, b): the outside parts of straddling extents, then the merged results.
    const os: number[] = [];
    const oe: number[] = [];
    const ov: (V | undefined)[] = [];
    let a = start;
    let b = end;
    if (walk.leftStart < start) {
      a = walk.leftStart;
      os.push(a);
      oe.push(start);
      ov.push(walk.leftValue);
    }
    for (let i = 0; i < m; i++) {
      const v = next[i];
      if (v === undefined) continue;
      const k = os.length - 1;
      if (k >= 0 && oe[k] === starts[i] && eq(ov[k] as V, v)) oe[k] = ends[i]!;
      else {
        os.push(starts[i]!);
        oe.push(ends[i]!);
        ov.push(v);
      }
    }
    if (walk.rightEnd > end) {
      b = walk.rightEnd;
      const k = os.length - 1;
      if (k >= 0 && oe[k] === end && eq(ov[k] as V, walk.rightValue as V)) oe[k] = b;
      else {
        os.push(end);
        oe.push(b);
        ov.push(walk.rightValue);
      }
    }
    // Neighbours just outside [a, b) merge with equal results that touch them.
    const k = os.length - 1;
    if (k >= 0 && this.root !== null) {
      if (a === start && os[0] === start && start > 0) {
        const l = this.leafFor(this.root, start - 1);
        const q = sIdx;
        if (q >= 0 && l.ends[q] === start && eq(l.vals[q] as V, ov[0] as V)) a = os[0] = l.starts[q]!;
      }
      if (b === end && oe[k] === end) {
        const l = this.leafFor(this.root, end);
        const q = sIdx;
        if (q >= 0 && l.starts[q] === end && eq(ov[k] as V, l.vals[q] as V)) b = oe[k] = l.ends[q]!;
      }
    }
    if (l !== null && a >= lb && b <= ub && this.editLeaf(l, a, b, os.length, -2, os, oe, ov)) return;
    this.replaceWith(a, b, os, oe, ov, os.length);
  }

  /** Extents (not gaps) intersecting [start, end), clipped to it, ascending. Snapshot semantics. */
  entries(start = -Infinity, end = Infinity): IterableIterator<Extent<V>> {
    return new EntriesIterator<V>(this.root, this.height, start, end, this.track());
  }

  /** Covers [start, end) exactly, gaps as undefined values, ascending. Snapshot semantics. */
  segments(start: number, end: number): IterableIterator<Extent<V | undefined>> {
    return new SegmentsIterator<V>(this.root, this.height, start, end, this.track());
  }

  /**
   * Snapshot semantics without freezing on every call: an iterator walks the nodes of the tree as
   * it was when created; the first mutation while an iterator created since the last freeze is
   * unfinished freezes the tree (new epoch), so from then on the map copies those nodes instead of
   * editing them. An abandoned iterator costs at most that one freeze.
   */
  private track(): Tracker {
    let t = this.tracker;
    if (t === null) {
      t = { live: 0 };
      this.tracker = t;
    }
    t.live++;
    return t;
  }

  /** Does any extent intersecting [start, end) satisfy pred? */
  some(start: number, end: number, pred: (v: V) => boolean): boolean {
    return start < end && this.root !== null && someIn(this.root, this.height, start, end, pred);
  }

  /** Does every sub-range of [start, end) satisfy pred (gaps passed as undefined)? */
  every(start: number, end: number, pred: (v: V | undefined) => boolean): boolean {
    return start >= end || new EveryWalk<V>(start, end, pred).run(this.root, this.height);
  }

  /** Number of pages in [start, end) covered by extents (whose value satisfies pred). */
  count(start: number, end: number, pred?: (v: V) => boolean): number {
    return start < end && this.root !== null ? countIn(this.root, this.height, start, end, pred) : 0;
  }

  /** O(1) copy sharing all nodes; neither side's later mutations affect the other. */
  clone(): ExtentMap<V> {
    const c = new ExtentMap<V>(this.eq);
    c.root = this.root;
    c.height = this.height;
    c.extents = this.extents;
    this.freeze();
    return c;
  }

  clear(): void {
    this.fLeaf = null;
    this.root = null;
    this.height = 0;
    this.extents = 0;
  }

  /**
   * Debugging aid for tests and invariant checkers: throws if the tree is malformed (extent order,
   * overlap, unmerged equal neighbours, separators, node fill, leaf depth, stale slots, size). O(n).
   * Returns the number of levels (0 for an empty map, 1 for a single leaf).
   */
  validate(): number {
    const root = this.root;
    if (root === null) {
      if (this.extents !== 0) throw new Error(`size ${this.extents} but no extents`);
      return 0;
    }
    let count = 0;
    let prevEnd = -Infinity;
    let prevValue: V | undefined;
    const check = (node: Node<V>, h: number, lo: number, hi: number, isRoot: boolean): void => {
      const n = node.n;
      if (n > CAP || (!isRoot && n < MIN) || n < (isRoot && h > 0 ? 2 : 1))
        throw new Error(`node of ${n} entries at height ${h}`);
      if (h === 0) {
        const l = node as Leaf<V>;
        if (l.starts.length !== CAP || l.ends.length !== CAP || l.vals.length !== CAP)
          throw new Error('leaf arrays not of capacity size');
        for (let i = 0; i < n; i++) {
          const s = l.starts[i]!;
          const e = l.ends[i]!;
          const v = l.vals[i];
          if (!Number.isSafeInteger(s) || !Number.isSafeInteger(e) || !(s < e) || v === undefined)
            throw new Error(`bad extent [${s}, ${e})`);
          if (s < lo || e > hi) throw new Error(`extent [${s}, ${e}) outside its separators [${lo}, ${hi})`);
          if (prevEnd > s) throw new Error(`overlap at ${s}`);
          if (prevEnd === s && this.eq(prevValue as V, v)) throw new Error(`unmerged at ${s}`);
          prevEnd = e;
          prevValue = v;
          count++;
        }
        for (let i = n; i < CAP; i++) if (l.vals[i] !== undefined) throw new Error('stale value slot');
        return;
      }
      const b = node as Branch<V>;
      if (b.keys.length !== CAP || b.kids.length !== CAP)
        throw new Error('branch arrays not of capacity size');
      for (let i = 0; i < n; i++) {
        const klo = i === 0 ? lo : b.keys[i]!;
        const khi = i + 1 < n ? b.keys[i + 1]! : hi;
        if (i > 0 && !(b.keys[i]! >= lo && b.keys[i]! <= hi))
          throw new Error(`separator ${b.keys[i]} out of range`);
        const kid = b.kids[i]!;
        if (kid === NIL) throw new Error('missing child');
        check(kid, h - 1, klo, khi, false);
      }
      for (let i = n; i < CAP; i++) if (b.kids[i] !== NIL) throw new Error('stale child slot');
    };
    check(root, this.height, -Infinity, Infinity, true);
    if (count !== this.extents) throw new Error(`size ${this.extents} but ${count} extents`);
    return this.height + 1;
  }

  /** Make every current node shared, so later edits copy instead of writing in place. */
  private freeze(): void {
    this.epoch = freshEpoch();
    this.tracker = null;
  }

  /**
   * Replace the contents of [a, b) (which no extent straddles) by the m extents in (ss, se, sv).
   * Runs no user code. Repairs the root: splits it when it overflows, drops one-child levels.
   */
  private replaceWith(a: number, b: number, ss: number[], se: number[], sv: unknown[], m: number): void {
    const t = this.tracker;
    if (t !== null && t.live > 0) this.freeze();
    E = this.epoch;
    RA = a;
    RB = b;
    IS = ss;
    IE = se;
    IV = sv;
    IM = m;
    removed = 0;
    this.fLeaf = null;
    let h = this.height;
    let root: Node<V> = this.root === null ? newLeaf<V>() : own(this.root, h);
    if (this.root === null) h = 0;
    replaceIn(root, h, true);
    while (root.n > CAP) {
      const r = newBranch<V>();
      r.n = 1;
      r.kids[0] = root;
      h++;
      redistribute(r, h, 0, 1);
      root = r;
    }
    while (h > 0 && root.n === 1) {
      root = (root as Branch<V>).kids[0]!;
      h--;
    }
    if (root.n === 0) {
      this.root = null;
      this.height = 0;
    } else {
      this.root = root;
      this.height = h;
    }
    this.extents += m - removed;
    IS = IE = SS;
    IV = SV;
    SV[0] = SV[1] = SV[2] = undefined;
    endPass();
  }
}
