/**
 * RecentCache (src/kernel/recent-cache.ts): the last four keys asked are answered without calling
 * `load`; a fifth key evicts the oldest slot (round robin). Answers are whatever `load` gave.
 */
import { describe, expect, it } from 'vitest';
import { RecentCache } from '../src/kernel/recent-cache.js';

describe('RecentCache', () => {
  it('calls load once per key while at most four keys are in use', () => {
    const loads: string[] = [];
    const c = new RecentCache((k: string) => {
      loads.push(k);
      return `v:${k}`;
    });
    for (let round = 0; round < 3; round++)
      for (const k of ['KVM_RUN', 'KVM_SET_MEMORY_ATTRIBUTES', 'fallocate', 'madvise'])
        expect(c.get(k)).toBe(`v:${k}`);
    expect(loads).toEqual(['KVM_RUN', 'KVM_SET_MEMORY_ATTRIBUTES', 'fallocate', 'madvise']);
  });

  it('a fifth key takes the oldest slot; the evicted key is loaded again when asked', () => {
    const loads: string[] = [];
    const c = new RecentCache((k: string) => {
      loads.push(k);
      return k.length;
    });
    for (const k of ['a', 'bb', 'ccc', 'dddd', 'eeeee']) c.get(k);
    expect(loads).toEqual(['a', 'bb', 'ccc', 'dddd', 'eeeee']);
    expect(c.get('bb')).toBe(2); // still cached
    expect(c.get('a')).toBe(1); // evicted by 'eeeee': loaded again
    expect(loads).toEqual(['a', 'bb', 'ccc', 'dddd', 'eeeee', 'a']);
  });

  it('caches undefined answers and the empty string like any other', () => {
    let n = 0;
    const c = new RecentCache((k: string) => {
      n++;
      return k === '' ? undefined : 1;
    });
    expect(c.get('')).toBeUndefined();
    expect(c.get('')).toBeUndefined();
    expect(c.get('x')).toBe(1);
    expect(n).toBe(2);
  });
});
