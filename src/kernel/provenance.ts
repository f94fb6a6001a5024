/**
 * Provenance: every state change records the call that made it and the kernel path that did it,
 * so an error can name the earlier step that put a page or a VM in the state that made it fail.
 */

export interface Provenance {
  /** Sequence number of the syscall (1-based, per host). Flow runners map it to their step. */
  readonly seq: number;
  /** The syscall or ioctl request, e.g. 'KVM_PRE_FAULT_MEMORY'. */
  readonly call: string;
  /** The kernel path, e.g. 'KVM_PRE_FAULT_MEMORY > kvm_gmem_get_pfn > kvm_gmem_prepare_folio > folio_mark_uptodate'. */
  readonly path: string;
}

/** Tracks the current syscall and the kernel functions it is in. */
export class Tracer {
  seq = 0;
  call = '';
  private readonly stack: string[] = [];

  /** A new syscall starts. */
  begin(call: string): void {
    this.seq++;
    this.call = call;
    this.stack.length = 0;
    this.stack.push(call);
  }

  /** Run `fn` inside kernel function `name` (for provenance paths). */
  within<T>(name: string, fn: () => T): T {
    this.stack.push(name);
    try {
      return fn();
    } finally {
      this.stack.pop();
    }
  }

  enter(name: string): void {
    this.stack.push(name);
  }

  leave(): void {
    this.stack.pop();
  }

  /** Provenance of a state change made here by `leaf` (e.g. 'folio_mark_uptodate'). */
  here(leaf?: string): Provenance {
    const path = leaf ? `${this.stack.join(' > ')} > ${leaf}` : this.stack.join(' > ');
    return { seq: this.seq, call: this.call, path };
  }
}

export function describeProvenance(p: Provenance): string {
  return `call #${p.seq} (${p.path})`;
}
