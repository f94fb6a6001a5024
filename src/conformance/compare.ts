/**
 * The model against a real kernel: reads what conformance/probe.c printed on a host ("name<TAB>result"
 * per case, "host.<fact><TAB>value" for facts about the host), runs the same cases on the model's
 * profile for that kernel (cases.ts), and lines them up.
 */
import { modelResults } from './cases.js';

export interface ProbeOutput {
  /** Facts about the host (vendor module, tdp_mmu, release, ...), without the "host." prefix. */
  readonly facts: ReadonlyMap<string, string>;
  /** Case name -> what the kernel answered, in the probe's order. */
  readonly results: ReadonlyMap<string, string>;
}

/** A probe output line that is not "name<TAB>result": its file:line. */
export class ProbeOutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeOutputError';
  }
}

export function parseProbeOutput(text: string, file = 'probe output'): ProbeOutput {
  const facts = new Map<string, string>();
  const results = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const m = /^([a-z0-9_.]+)\t(.+)$/.exec(line);
    if (!m) throw new ProbeOutputError(`${file}:${i + 1}: not "name<TAB>result": ${JSON.stringify(line)}`);
    const [, name, value] = m as unknown as [string, string, string];
    if (name.startsWith('host.')) facts.set(name.slice(5), value);
    else if (results.has(name)) throw new ProbeOutputError(`${file}:${i + 1}: case ${name} given twice`);
    else results.set(name, value);
  }
  if (results.size === 0) throw new ProbeOutputError(`${file}: no cases`);
  return { facts, results };
}

/** The profile that models a kernel release, by its major.minor ("6.18.44-..." -> v6.18). */
export function profileForRelease(release: string): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return undefined;
  const v = Number(m[1]) * 100 + Number(m[2]);
  if (v >= 700) return 'v7.0';
  if (v >= 619) return 'v6.19';
  if (v >= 618) return 'v6.18';
  if (v >= 616) return 'v6.16';
  if (v >= 611) return 'v6.11';
  if (v >= 608) return 'v6.8';
  return undefined;
}

export interface ConformanceRow {
  readonly name: string;
  readonly kernel: string;
  /** The model's answer, or undefined if the model has no such case (a newer probe). */
  readonly model: string | undefined;
  readonly agrees: boolean;
}

export interface ConformanceReport {
  readonly profile: string;
  /** The host had two-dimensional paging (it reported KVM_CAP_PRE_FAULT_MEMORY). */
  readonly tdp: boolean;
  /** The host emulated the probe's guest instruction by instruction (e.g. PVM). */
  readonly emulated: boolean;
  readonly facts: ReadonlyMap<string, string>;
  readonly rows: readonly ConformanceRow[];
  readonly differ: number;
}

/**
 * Whether the host has the TDP MMU, which the model's `tdp` stands for: the kvm.tdp_mmu parameter
 * (tdp_mmu_enabled, 0 without EPT/NPT) where the probe read it; else KVM_CAP_PRE_FAULT_MEMORY
 * (6.11+: tdp_enabled); else assumed.
 */
function hostHasTdp(out: ProbeOutput): boolean {
  const param = out.facts.get('tdp_mmu');
  if (param === 'Y' || param === '1') return true;
  if (param === 'N' || param === '0') return false;
  const cap = out.results.get('cap.sys.pre_fault_memory');
  return cap === undefined || cap !== '0';
}

/** Run the probe's cases on `profile`, shaped like the host (TDP or not, emulated guest or not). */
export function compareWithModel(out: ProbeOutput, profile: string): ConformanceReport {
  const tdp = hostHasTdp(out);
  const emulated = Number(out.facts.get('run_gmem_insn_emulated') ?? 0) > 0;
  const model = modelResults(profile, { tdp, emulated });
  const rows = [...out.results].map(([name, kernel]): ConformanceRow => {
    const m = model.get(name);
    return { name, kernel, model: m, agrees: m === kernel };
  });
  return {
    profile,
    tdp,
    emulated,
    facts: out.facts,
    rows,
    differ: rows.filter((r) => !r.agrees).length,
  };
}
