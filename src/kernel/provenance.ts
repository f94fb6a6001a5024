/**
 * Provenance: every state change records the call that made it and the kernel path that did it,
 * so an error can name the earlier step that put a page or a VM in the state that made it fail.
 *
 * Cost model: recording must be cheap because the fault path records on every page it changes,
 * and small because page state keeps it (one record per extent, a million extents in
 * bench/scale-4tib.ts).
 * - The kernel-function stack is a linked list of frames interned for the host's lifetime: a
 *   bottom frame per call name, a child per (caller, callee) name. Entering a function allocates
 *   nothing after the first time.
 * - A *site* is (frame, leaf), also interned: it owns the ' > ' path string, built once on first
 *   read and shared by every record made there, in any syscall.
 * - A record is then just (seq, site): two fields. The record of one site is interned for the
 *   duration of its syscall, so the thousands of pages one call touches share one object (and
 *   adjacent extents carrying it merge).
 * - State need not keep the record object: SPTEs and folios (one per page of a scattered trace)
 *   keep (seq, site) as two fields of their own, taken from `Tracer.seq` and `Tracer.site()` /
 *   `siteIn()` without making a record, and state that is always changed at one site (memory
 *   attributes) keeps only the seq. `Site.at(seq)` rebuilds the record when an explanation needs it.
 */
import { RecentCache } from './recent-cache.js';

export interface Provenance {
  /** Sequence number of the syscall (1-based, per host). Flow runners map it to their step. */
  readonly seq: number;
  /** The syscall or ioctl request, e.g. 'KVM_PRE_FAULT_MEMORY'. */
  readonly call: string;
  /** The kernel call chain, e.g. 'KVM_PRE_FAULT_MEMORY > ... > kvm_gmem_prepare_folio > kvm_gmem_mark_prepared > folio_mark_uptodate'. */
  readonly path: string;
}

/** One kernel function on the stack; `parent` is the caller (the syscall is the bottom frame). */
class Frame {
  /** Sites (leaves) of state changes made directly in this frame. */
  sites: Map<string, Site> | null = null;
  /** Interned callee frames, so repeated calls of one function share a frame (and its sites). */
  children: Map<string, Frame> | null = null;
  /** The bottom frame: its name is the syscall's. */
  readonly root: Frame;
  constructor(
    readonly name: string,
    readonly parent: Frame | null,
  ) {
    this.root = parent === null ? this : parent.root;
  }

  /**
   * The two callees asked for last, and their names: a frame mostly calls the same function again,
   * or alternates between two (KVM_RUN's guest accesses and conversion requests).
   */
  private lastName = '';
  private lastChild: Frame | null = null;
  private prevName = '';
  private prevChild: Frame | null = null;

  /** The frame for `name` called from here. */
  child(name: string): Frame {
    if (name === this.lastName && this.lastChild !== null) return this.lastChild;
    const f = name === this.prevName && this.prevChild !== null ? this.prevChild : this.lookupChild(name);
    this.prevName = this.lastName;
    this.prevChild = this.lastChild;
    this.lastName = name;
    this.lastChild = f;
    return f;
  }

  private lookupChild(name: string): Frame {
    let kids = this.children;
    if (kids === null) {
      kids = new Map();
      this.children = kids;
    }
    let f = kids.get(name);
    if (f === undefined) {
      f = new Frame(name, this);
      kids.set(name, f);
    }
    return f;
  }

  private lastLeaf = '';
  private lastSite: Site | null = null;

  site(leaf: string): Site {
    if (leaf === this.lastLeaf && this.lastSite !== null) return this.lastSite;
    const s = this.lookupSite(leaf);
    this.lastLeaf = leaf;
    this.lastSite = s;
    return s;
  }

  private lookupSite(leaf: string): Site {
    let sites = this.sites;
    if (sites === null) {
      sites = new Map();
      this.sites = sites;
    }
    let s = sites.get(leaf);
    if (s === undefined) {
      s = new Site(this, leaf);
      sites.set(leaf, s);
    }
    return s;
  }
}

function framePath(f: Frame): string {
  const names: string[] = [];
  for (let p: Frame | null = f; p !== null; p = p.parent) names.push(p.name);
  return names.reverse().join(' > ');
}

/** Where a state change is made: a kernel path (frame) and the leaf that did it. */
export class Site {
  private joined: string | undefined;
  /** The record last made here, reused while its syscall runs. */
  last: SiteProvenance | null = null;
  constructor(
    private readonly frame: Frame,
    private readonly leaf: string,
  ) {}

  /** The syscall or ioctl the path starts from. */
  get call(): string {
    return this.frame.root.name;
  }

  /** 'CALL > fn > ... > leaf', built on first read. */
  get path(): string {
    if (this.joined === undefined) {
      const base = framePath(this.frame);
      this.joined = this.leaf ? `${base} > ${this.leaf}` : base;
    }
    return this.joined;
  }

  /** The provenance of a change made here by syscall `seq` (rebuilt from a stored seq). */
  at(seq: number): Provenance {
    const last = this.last;
    return last !== null && last.seq === seq ? last : new SiteProvenance(seq, this);
  }
}

/** A provenance record: the syscall's seq and the site; call and path come from the site. */
class SiteProvenance implements Provenance {
  constructor(
    readonly seq: number,
    private readonly site: Site,
  ) {}
  get call(): string {
    return this.site.call;
  }
  get path(): string {
    return this.site.path;
  }
  toJSON(): Provenance {
    return { seq: this.seq, call: this.call, path: this.path };
  }
}

/** Tracks the current syscall and the kernel functions it is in. */
export class Tracer {
  seq = 0;
  call = '';
  private top: Frame = new Frame('', null);
  /** Bottom frames interned per call name, so frames and sites are shared by every syscall of that name. */
  private readonly roots = new Map<string, Frame>();
  /** `roots` for the few calls a VMM's loop repeats. */
  private readonly recentRoots = new RecentCache((call: string) => {
    let root = this.roots.get(call);
    if (root === undefined) {
      root = new Frame(call, null);
      this.roots.set(call, root);
    }
    return root;
  });

  /** A new syscall starts. */
  begin(call: string): void {
    this.seq++;
    this.call = call;
    this.top = this.recentRoots.get(call);
  }

  /** Run `fn` inside kernel function `name` (for provenance paths). */
  within<T>(name: string, fn: () => T): T {
    const saved = this.top;
    this.top = saved.child(name);
    try {
      return fn();
    } finally {
      this.top = saved;
    }
  }

  /** Enter kernel function `name`; pair with leave() in a finally (within() without a closure). */
  enter(name: string): void {
    this.top = this.top.child(name);
  }

  leave(): void {
    if (this.top.parent !== null) this.top = this.top.parent;
  }

  /** The site of a state change made here by `leaf`, for state that stores only the seq. */
  site(leaf = ''): Site {
    return this.top.site(leaf);
  }

  /** Provenance of a state change made here by `leaf` (e.g. 'folio_mark_uptodate'). */
  here(leaf = ''): Provenance {
    return this.record(this.top.site(leaf));
  }

  /**
   * Provenance of a change made by `leaf` in `callees`, called in turn from here: the record of
   * `within(callees[0], () => within(callees[1], () => here(leaf)))` without the closures. For a
   * model that folds several kernel steps into one state update and records the last of them.
   */
  hereIn(callees: readonly string[], leaf: string): Provenance {
    return this.record(this.siteIn(callees, leaf));
  }

  /** The site of a change made by `leaf` in `callees`, called in turn from here (hereIn() without the record). */
  siteIn(callees: readonly string[], leaf: string): Site {
    let f = this.top;
    for (const name of callees) f = f.child(name);
    return f.site(leaf);
  }

  private record(s: Site): Provenance {
    // Sites outlive their syscall: a record is reused only within the syscall that made it.
    let p = s.last;
    if (p === null || p.seq !== this.seq) {
      p = new SiteProvenance(this.seq, s);
      s.last = p;
    }
    return p;
  }
}

export function describeProvenance(p: Provenance): string {
  return `call #${p.seq} (${p.path})`;
}
