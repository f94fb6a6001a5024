/**
 * Provenance: every state change records the call that made it and the kernel path that did it,
 * so an error can name the earlier step that put a page or a VM in the state that made it fail.
 *
 * Cost model: recording must be cheap because the fault path records on every page it changes.
 * The kernel-function stack is a persistent linked list whose frames are interned per syscall
 * (entering the same function from the same caller again reuses its frame; bottom frames are
 * interned per call name, so frames are shared across syscalls), the ' > ' path string is only built
 * when someone reads it, and the provenance of (syscall, stack, leaf) is interned for the duration of
 * the syscall, so the thousands
 * of pages one call touches share one object (and adjacent extents carrying it merge).
 */

export interface Provenance {
  /** Sequence number of the syscall (1-based, per host). Flow runners map it to their step. */
  readonly seq: number;
  /** The syscall or ioctl request, e.g. 'KVM_PRE_FAULT_MEMORY'. */
  readonly call: string;
  /** The kernel path, e.g. 'KVM_PRE_FAULT_MEMORY > kvm_gmem_get_pfn > kvm_gmem_prepare_folio > folio_mark_uptodate'. */
  readonly path: string;
}

/** One kernel function on the stack; `parent` is the caller (the syscall is the bottom frame). */
interface Frame {
  readonly name: string;
  readonly parent: Frame | null;
  /** Interned provenance per leaf taken in this frame, valid for syscall `seq` only. */
  cache: Map<string, LazyProvenance> | null;
  /** Interned callee frames, so repeated calls of one function share a frame (and its cache). */
  children: Map<string, Frame> | null;
}

function newFrame(name: string, parent: Frame | null): Frame {
  return { name, parent, cache: null, children: null };
}

/** The frame for `name` called from `parent`; frames live as long as their syscall's bottom frame. */
function child(parent: Frame, name: string): Frame {
  let kids = parent.children;
  if (kids === null) {
    kids = new Map();
    parent.children = kids;
  }
  let f = kids.get(name);
  if (f === undefined) {
    f = newFrame(name, parent);
    kids.set(name, f);
  }
  return f;
}

function framePath(f: Frame): string {
  const names: string[] = [];
  for (let p: Frame | null = f; p !== null; p = p.parent) names.push(p.name);
  return names.reverse().join(' > ');
}

/** A provenance whose path string is built on first read. */
class LazyProvenance implements Provenance {
  private joined: string | undefined;
  constructor(
    readonly seq: number,
    readonly call: string,
    private readonly frame: Frame,
    private readonly leaf: string,
  ) {}
  get path(): string {
    if (this.joined === undefined) {
      const base = framePath(this.frame);
      this.joined = this.leaf ? `${base} > ${this.leaf}` : base;
    }
    return this.joined;
  }
  toJSON(): Provenance {
    return { seq: this.seq, call: this.call, path: this.path };
  }
}

/** Tracks the current syscall and the kernel functions it is in. */
export class Tracer {
  seq = 0;
  call = '';
  private top: Frame = newFrame('', null);
  /**
   * Bottom frames interned per call name, so frames (and their Maps) are shared by every syscall of
   * that name instead of being pinned, one set per syscall, by the provenance each state change keeps
   * (1M attribute extents would otherwise each hold two frames and two Maps: bench/scale-4tib.ts).
   */
  private readonly roots = new Map<string, Frame>();

  /** A new syscall starts. */
  begin(call: string): void {
    this.seq++;
    this.call = call;
    let root = this.roots.get(call);
    if (root === undefined) {
      root = newFrame(call, null);
      this.roots.set(call, root);
    }
    this.top = root;
  }

  /** Run `fn` inside kernel function `name` (for provenance paths). */
  within<T>(name: string, fn: () => T): T {
    const saved = this.top;
    this.top = child(saved, name);
    try {
      return fn();
    } finally {
      this.top = saved;
    }
  }

  enter(name: string): void {
    this.top = child(this.top, name);
  }

  leave(): void {
    if (this.top.parent !== null) this.top = this.top.parent;
  }

  /** Provenance of a state change made here by `leaf` (e.g. 'folio_mark_uptodate'). */
  here(leaf = ''): Provenance {
    const f = this.top;
    // Frames outlive their syscall (interned per call name): a cached provenance is reused only
    // within the syscall that made it.
    if (f.cache === null) f.cache = new Map();
    let p = f.cache.get(leaf);
    if (p === undefined || p.seq !== this.seq) {
      p = new LazyProvenance(this.seq, this.call, f, leaf);
      f.cache.set(leaf, p);
    }
    return p;
  }
}

export function describeProvenance(p: Provenance): string {
  return `call #${p.seq} (${p.path})`;
}
