/** Text reports for a terminal: one flow run step by step, and the flows x kernels matrix. */
import {
  agrees,
  documentedOutcome,
  type MatrixCell,
  type MatrixResult,
  observe,
  outcomeLabel,
} from '../flow/matrix.js';
import { type FlowRun, outcomeText } from '../flow/runner.js';
import type { Flow } from '../flow/types.js';

export interface TextOptions {
  /** ANSI colours (a terminal that wants them). */
  readonly color?: boolean;
  /** Matrix: explain every failing cell, not only those that differ from the documented outcome. */
  readonly verbose?: boolean;
}

const paint = (on: boolean | undefined, code: string, s: string): string =>
  on ? `\x1b[${code}m${s}\x1b[0m` : s;
const red = (o: TextOptions, s: string): string => paint(o.color, '31', s);
const green = (o: TextOptions, s: string): string => paint(o.color, '32', s);
const dim = (o: TextOptions, s: string): string => paint(o.color, '2', s);
const bold = (o: TextOptions, s: string): string => paint(o.color, '1', s);

/** A flow run: every step with its result; the explanation under each failure. */
export function renderRun(run: FlowRun, flow?: Flow, o: TextOptions = {}): string {
  const lines: string[] = [];
  lines.push(`${bold(o, `${run.flow.name}`)} on ${run.kernel} (${run.platform}) - ${run.flow.file}`);
  lines.push(dim(o, run.flow.title));
  const width = Math.max(4, ...run.steps.map((s) => (s.name ?? '').length));
  for (const s of run.steps) {
    const mark = s.asExpected ? green(o, 'ok ') : red(o, 'ERR');
    const iter = s.iteration
      ? ` [${Object.entries(s.iteration)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}]`
      : '';
    const result = outcomeText(s.outcome) + (s.exit ? `, ${s.exit}` : '');
    lines.push(
      `${String(s.n).padStart(4)} ${mark} ${(s.name ?? '').padEnd(width)}  ${s.call}${iter} -> ${result}` +
        (s.asExpected ? '' : dim(o, `  (expected ${s.expected})`)),
    );
    if (s.explanation && (!s.asExpected || o.verbose))
      lines.push(`          ${s.asExpected ? dim(o, s.explanation) : s.explanation}`);
  }
  const f = run.firstUnexpected;
  lines.push(
    f
      ? red(
          o,
          `FAIL: step ${f.n}${f.name ? ` '${f.name}'` : ''} (${f.loc.file}:${f.loc.line}) did not meet its expectation`,
        )
      : green(o, `PASS: all ${run.steps.length} steps as expected`),
  );
  if (flow) {
    const doc = documentedOutcome(flow, run.kernel);
    const obs = observe(run);
    const same = agrees(doc, obs);
    lines.push(
      `documented outcome on ${run.kernel}: ${outcomeLabel(doc)}${doc?.why ? ` - ${doc.why.trim()}` : ''}; ` +
        (same ? green(o, 'this run agrees') : red(o, `this run differs (${outcomeLabel(obs)})`)),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The short text of a cell: ok, or errno@step. */
export function cellText(c: MatrixCell): string {
  const obs = c.observed;
  return obs.result === 'ok' ? 'ok' : `${obs.result}@${obs.step ?? '?'}`;
}

/** The flows x kernels table; every cell that differs from its documented outcome is marked. */
export function renderMatrix(m: MatrixResult, o: TextOptions = {}): string {
  const cell = (f: string, k: string): MatrixCell => m.cells.find((c) => c.flow === f && c.kernel === k)!;
  const flowW = Math.max(4, ...m.flows.map((f) => f.name.length));
  const colW = m.kernels.map((k) =>
    Math.max(k.length, ...m.flows.map((f) => cellText(cell(f.name, k)).length + 1)),
  );
  const lines: string[] = [];
  lines.push(`${'flow'.padEnd(flowW)}  ${m.kernels.map((k, i) => k.padEnd(colW[i]!)).join('  ')}`);
  lines.push(`${'-'.repeat(flowW)}  ${colW.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const f of m.flows) {
    const cols = m.kernels.map((k, i) => {
      const c = cell(f.name, k);
      const t = (cellText(c) + (c.agrees ? ' ' : '!')).padEnd(colW[i]!);
      if (!c.agrees) return red(o, t);
      return c.observed.result === 'ok' ? green(o, t) : t;
    });
    lines.push(`${f.name.padEnd(flowW)}  ${cols.join('  ')}`);
  }
  const differ = m.cells.filter((c) => !c.agrees);
  lines.push('');
  lines.push(
    dim(
      o,
      'ok = every expectation held; ERRNO@N = first unexpected result at step N; ! = differs from the documented outcome',
    ),
  );
  const explainCells = o.verbose ? m.cells.filter((c) => !c.agrees || c.observed.result !== 'ok') : differ;
  for (const c of explainCells) {
    lines.push('');
    lines.push(
      `${c.agrees ? '' : red(o, 'DIFFERS ')}${c.flow} on ${c.kernel}: observed ${outcomeLabel(c.observed)}, documented ${outcomeLabel(c.documented)}`,
    );
    const f = c.run.firstUnexpected;
    if (f?.explanation) lines.push(`  ${f.explanation}`);
  }
  lines.push('');
  lines.push(
    differ.length === 0
      ? green(
          o,
          `${m.cells.length} cells (${m.flows.length} flows x ${m.kernels.length} kernels): all agree with the documented outcomes`,
        )
      : red(o, `${differ.length} of ${m.cells.length} cells differ from the documented outcomes`),
  );
  return `${lines.join('\n')}\n`;
}
