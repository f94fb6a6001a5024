/**
 * bench/lib/gc-pauses.ts: the GC pauses a benchmark prints under each run come from the
 * node:perf_hooks 'gc' entries of its time window.
 */
import { describe, expect, it } from 'vitest';
import { openGcWindow } from '../../bench/lib/gc-pauses.js';

describe('openGcWindow', () => {
  it('counts the collections that allocation inside the window causes', async () => {
    const w = openGcWindow();
    // ~200 MB of short-lived objects: many young-generation collections.
    let keep: object[] = [];
    for (let i = 0; i < 4_000_000; i++) {
      keep.push({ i, s: `x${i}` });
      if (keep.length > 10_000) keep = [];
    }
    const g = await w.close();
    expect(g.count).toBeGreaterThan(0);
    expect(g.seconds).toBeGreaterThan(0);
    expect(g.majorCount).toBeLessThanOrEqual(g.count);
    expect(g.majorSeconds).toBeLessThanOrEqual(g.seconds);
    expect(keep.length).toBeLessThanOrEqual(10_000);
  });
});
