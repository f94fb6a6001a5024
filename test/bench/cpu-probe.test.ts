/**
 * bench/lib/cpu-probe.ts: the `machine at S` a benchmark prints next to each run comes from probes
 * taken inside the run, whose time the run does not count.
 */
import { describe, expect, it } from 'vitest';
import { CpuProbe } from '../../bench/lib/cpu-probe.js';

describe('CpuProbe', () => {
  it('a run without probes has no median; one with probes has a median whose speed is at most 1', () => {
    const p = new CpuProbe(3);
    p.begin();
    expect(p.end()).toBeNaN();
    p.begin();
    for (let i = 0; i < 5; i++) p.sample();
    const median = p.end();
    expect(median).toBeGreaterThan(0);
    // The fastest probe so far is at most the median of any run's probes.
    expect(p.speed(median)).toBeGreaterThan(0);
    expect(p.speed(median)).toBeLessThanOrEqual(1);
  });

  it('counts the time of its probes, for the run to take off, and starts again at begin()', () => {
    const p = new CpuProbe(1);
    p.begin();
    const t0 = performance.now();
    p.sample();
    p.sample();
    const elapsed = performance.now() - t0;
    expect(p.spentMs).toBeGreaterThan(0);
    expect(p.spentMs).toBeLessThanOrEqual(elapsed);
    p.begin();
    expect(p.spentMs).toBe(0);
    expect(p.end()).toBeNaN();
  });

  it('a run twice as slow as the best probe has speed 1/2 or less', () => {
    const p = new CpuProbe(2);
    p.begin();
    p.sample();
    const best = p.end();
    // No probe is faster than the best one seen: the speed of a median of twice that is 1/2 or less.
    expect(p.speed(2 * best)).toBeLessThanOrEqual(0.5);
    expect(p.speed(2 * best)).toBeGreaterThan(0);
  });
});
