/** JSON reports: plain data (bigints and bytes as strings), stable key order, for tools. */
import type { MatrixResult } from '../flow/matrix.js';
import { agrees, documentedOutcome, observe } from '../flow/matrix.js';
import type { FlowRun } from '../flow/runner.js';
import type { Flow, Outcome } from '../flow/types.js';

function outcomeJson(o: Outcome | undefined): unknown {
  return o ? { result: o.result, at: o.at, why: o.why?.trim() } : null;
}

export function runJson(run: FlowRun, flow?: Flow): unknown {
  const doc = flow ? documentedOutcome(flow, run.kernel) : undefined;
  const obs = observe(run);
  return {
    flow: run.flow,
    kernel: run.kernel,
    platform: run.platform,
    passed: run.passed,
    observed: obs,
    documented: flow ? outcomeJson(doc) : undefined,
    agrees: flow ? agrees(doc, obs) : undefined,
    steps: run.steps.map((s) => ({
      n: s.n,
      name: s.name,
      call: s.call,
      location: `${s.loc.file}:${s.loc.line}:${s.loc.col}`,
      iteration: s.iteration,
      outcome: s.outcome,
      exit: s.exit,
      expected: s.expected,
      asExpected: s.asExpected,
      explanation: s.explanation,
    })),
  };
}

export function matrixJson(m: MatrixResult): unknown {
  return {
    kernels: m.kernels,
    flows: m.flows,
    agrees: m.agrees,
    cells: m.cells.map((c) => ({
      flow: c.flow,
      kernel: c.kernel,
      observed: c.observed,
      documented: outcomeJson(c.documented),
      agrees: c.agrees,
      explanation: c.run.firstUnexpected?.explanation,
    })),
  };
}

/** JSON text: bigints as decimal strings, byte arrays as hex. */
export function toJsonText(v: unknown): string {
  return `${JSON.stringify(
    v,
    (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (x instanceof Uint8Array) return Buffer.from(x).toString('hex');
      return x;
    },
    2,
  )}\n`;
}
