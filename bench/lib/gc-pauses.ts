/**
 * GC pauses of the main thread inside a time window, from node:perf_hooks 'gc' entries. Node
 * delivers those entries after the synchronous code that caused them, so a benchmark opens a
 * window before its timed run and reads it (asynchronously) after.
 */
import { constants, type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';

export interface GcPauses {
  /** Main-thread pause time of all collections, seconds. */
  seconds: number;
  count: number;
  /** Of which mark-compact (major) collections. */
  majorSeconds: number;
  majorCount: number;
}

export interface GcWindow {
  /** Ends the window; resolves once Node has delivered its entries. */
  close(): Promise<GcPauses>;
}

export function openGcWindow(): GcWindow {
  const from = performance.now();
  const entries: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => {
    entries.push(...list.getEntries());
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    async close(): Promise<GcPauses> {
      const to = performance.now();
      // Entries are queued for the observer and delivered on a later turn of the event loop.
      await new Promise((resolve) => setTimeout(resolve, 0));
      entries.push(...obs.takeRecords());
      obs.disconnect();
      const r: GcPauses = { seconds: 0, count: 0, majorSeconds: 0, majorCount: 0 };
      for (const e of entries) {
        if (e.startTime < from || e.startTime > to) continue;
        r.seconds += e.duration / 1000;
        r.count++;
        const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
          r.majorSeconds += e.duration / 1000;
          r.majorCount++;
        }
      }
      return r;
    },
  };
}
