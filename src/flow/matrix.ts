/**
 * The flow matrix: every flow against every kernel profile (on the flow's platform), each cell
 * compared with the outcome the flow's sources document for that profile.
 */
import { kernels as allKernels, getProfile } from '../kernel/profiles/index.js';
import { type FlowRun, FlowRunError, runFlow, type StepResult } from './runner.js';
import type { Flow, Outcome } from './types.js';

/** What a run came to, in the terms outcomes are documented in. */
export interface Observed {
  /** 'ok', or the first unexpected step's errno / signal / 'invariant' / 'mismatch' (a value or out-field differs) / 'flow-error' / 'defect' / 'unexpected-ok'. */
  readonly result: string;
  /** The name of the first unexpected step (if it has one). */
  readonly at?: string;
  /** Its step number. */
  readonly step?: number;
}

export function observe(run: FlowRun): Observed {
  const s = run.firstUnexpected;
  if (!s) return { result: 'ok' };
  return { result: resultOf(s), at: s.name, step: s.n };
}

function resultOf(s: StepResult): string {
  switch (s.outcome.kind) {
    case 'ok':
      // An exit other than the expected one, a success where an errno was expected, or a value /
      // out-field that differs.
      if (s.exit && s.expected.includes('exit') && !s.expected.includes(s.exit)) return s.exit;
      return s.expected.startsWith('ok') || s.expected.startsWith('any') ? 'mismatch' : 'unexpected-ok';
    case 'errno':
      return s.outcome.code;
    case 'signal':
      return s.outcome.signal;
    default:
      return s.outcome.kind;
  }
}

/** The documented outcome of a flow on a profile: its own entry, else `others`. */
export function documentedOutcome(flow: Flow, kernel: string): Outcome | undefined {
  return flow.outcomes.get(kernel) ?? flow.outcomes.get('others');
}

export function agrees(doc: Outcome | undefined, obs: Observed): boolean {
  if (!doc) return false;
  if (doc.result === 'ok') return obs.result === 'ok';
  return doc.result === obs.result && doc.at === obs.at;
}

export function outcomeLabel(o: Outcome | Observed | undefined): string {
  if (!o) return 'undocumented';
  if (o.result === 'ok') return 'ok';
  return `${o.result} at ${o.at ?? `step ${'step' in o ? (o.step ?? '?') : '?'}`}`;
}

export interface MatrixCell {
  readonly flow: string;
  readonly kernel: string;
  readonly observed: Observed;
  readonly documented?: Outcome;
  readonly agrees: boolean;
  readonly run: FlowRun;
}

export interface MatrixResult {
  readonly flows: ReadonlyArray<{
    readonly name: string;
    readonly title: string;
    readonly file: string;
    readonly platform: string;
  }>;
  readonly kernels: readonly string[];
  /** Row-major: flows x kernels. */
  readonly cells: readonly MatrixCell[];
  /** Every cell agrees with its documented outcome. */
  readonly agrees: boolean;
}

export interface MatrixOptions {
  /** Profile names (default: every profile). */
  readonly kernels?: readonly string[];
  readonly invariants?: boolean;
}

export function runMatrix(flows: readonly Flow[], opts: MatrixOptions = {}): MatrixResult {
  const ks = opts.kernels ?? allKernels();
  for (const k of ks)
    if (!getProfile(k)) throw new FlowRunError(`unknown kernel '${k}'; known: ${allKernels().join(', ')}`);
  const cells: MatrixCell[] = [];
  for (const flow of flows) {
    for (const kernel of ks) {
      const run = runFlow(flow, { kernel, invariants: opts.invariants });
      const observed = observe(run);
      const documented = documentedOutcome(flow, kernel);
      cells.push({
        flow: flow.name,
        kernel,
        observed,
        documented,
        agrees: agrees(documented, observed),
        run,
      });
    }
  }
  return {
    flows: flows.map((f) => ({ name: f.name, title: f.title, file: f.file, platform: f.platform })),
    kernels: ks,
    cells,
    agrees: cells.every((c) => c.agrees),
  };
}
