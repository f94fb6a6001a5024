/**
 * A lookup with its last few answers in front. The syscall entry points ask the same few keys
 * again and again (a VMM's ioctl request names, the syscall names provenance is filed under), and
 * a Map lookup of a string hashes it and walks a bucket; here a recent key is found by identity.
 * `load` must answer a key the same way every time: an answer in a slot is used until evicted, never
 * asked again.
 */
export class RecentCache<K, V> {
  private static readonly SLOTS = 4;
  // Only keys in the slots (no sentinel of another type): the identity compares stay monomorphic.
  private readonly keys: K[] = [];
  private readonly vals: V[] = [];
  /** The slot the next miss overwrites, once all are filled (round robin). */
  private next = 0;
  private readonly load: (key: K) => V;

  constructor(load: (key: K) => V) {
    this.load = load;
  }

  get(key: K): V {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] === key) return this.vals[i]!;
    const v = this.load(key);
    const at = keys.length < RecentCache.SLOTS ? keys.length : this.next;
    keys[at] = key;
    this.vals[at] = v;
    this.next = (at + 1) % RecentCache.SLOTS;
    return v;
  }
}
