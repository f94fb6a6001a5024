/**
 * Runs a flow against (kernel profile, platform): one result per executed step, the first
 * unexpected one, and for every failure an explanation built from the model's provenance. The
 * model's SyscallError carries the kernel function that returned the errno (`reason`) and the
 * state that made it fail (`explanation`, citing "call #N" = the host's syscall sequence number);
 * the runner maps sequence numbers to its step numbers and rewrites "call #N" into "step K".
 */
import { HostFault, InvariantViolation, SyscallError } from '../kernel/errors.js';
import type { GuestOp, GuestProgram } from '../kernel/guest/program.js';
import { createHost, type Host } from '../kernel/host.js';
import type { PlatformName } from '../kernel/platform.js';
import { getProfile, kernels } from '../kernel/profiles/index.js';
import type { KernelProfile } from '../kernel/profiles/types.js';
import type { ErrnoName } from '../uapi/errno.js';
import { type EvalEnv, evalBig, evalRaw, FlowEvalError, toArg } from './expr.js';
import { uapiConstant } from './loader.js';
import type { CData, CValue, Expect, Flow, Loc, Step } from './types.js';

export interface RunOptions {
  /** A profile name from kernels(), or a profile object. */
  readonly kernel: string | KernelProfile;
  /** Default: the flow's platform. */
  readonly platform?: PlatformName;
  /** Run every step even after an unexpected result (default: stop at the first). */
  readonly keepGoing?: boolean;
  /** Check the safety invariants after every syscall (default true). */
  readonly invariants?: boolean;
}

export type StepOutcome =
  | { readonly kind: 'ok'; readonly value: number | string }
  | {
      readonly kind: 'errno';
      readonly code: ErrnoName;
      readonly errno: number;
      /** The kernel function that returned it, and why. */
      readonly reason: string;
      /** The earlier state change behind it, with "call #N" rewritten to "step K". */
      readonly cause?: string;
    }
  | {
      readonly kind: 'signal';
      readonly signal: 'SIGBUS' | 'SIGSEGV';
      readonly address: string;
      readonly reason: string;
    }
  | { readonly kind: 'invariant'; readonly invariant: string; readonly detail: string }
  /** The flow itself could not go on (a name bound by a step that failed, a loop that never ends). */
  | { readonly kind: 'flow-error'; readonly message: string }
  /** A plain exception escaped the model: a model defect. */
  | { readonly kind: 'defect'; readonly message: string };

export interface StepResult {
  /** 1-based number of the executed step (loop iterations count separately). */
  readonly n: number;
  readonly name?: string;
  /** What was called, e.g. "ioctl KVM_MEMORY_ENCRYPT_OP(KVM_TDX_INIT_MEM_REGION)". */
  readonly call: string;
  readonly loc: Loc;
  /** Loop variables at this step, e.g. { gpa: '0x1000' }. */
  readonly iteration?: Readonly<Record<string, string>>;
  readonly outcome: StepOutcome;
  /** KVM_RUN: the exit reason after the call, by uAPI name. */
  readonly exit?: string;
  /** The expectation, as text: "ok", "EEXIST", "ok, exit KVM_EXIT_HLT". */
  readonly expected: string;
  /** Did the result meet the expectation? */
  readonly asExpected: boolean;
  /** For failures and unexpected results: the whole story, one paragraph. */
  readonly explanation?: string;
}

export interface FlowRun {
  readonly flow: { readonly name: string; readonly title: string; readonly file: string };
  readonly kernel: string;
  readonly platform: PlatformName;
  readonly steps: readonly StepResult[];
  /** Every expectation held and the flow ran to its end. */
  readonly passed: boolean;
  readonly firstUnexpected?: StepResult;
}

/** Bad run options (unknown kernel, platform): reported in one line by the CLI. */
export class FlowRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowRunError';
  }
}

const EXIT_NAMES = new Map<number, string>();
function exitName(reason: number): string {
  if (EXIT_NAMES.size === 0) {
    for (const n of [
      'UNKNOWN',
      'EXCEPTION',
      'IO',
      'HYPERCALL',
      'DEBUG',
      'HLT',
      'MMIO',
      'SHUTDOWN',
      'FAIL_ENTRY',
      'INTR',
      'INTERNAL_ERROR',
      'SYSTEM_EVENT',
      'MEMORY_FAULT',
      'TDX',
    ]) {
      const v = uapiConstant(`KVM_EXIT_${n}`);
      if (v !== undefined) EXIT_NAMES.set(Number(v), `KVM_EXIT_${n}`);
    }
  }
  return EXIT_NAMES.get(reason) ?? `exit ${reason}`;
}

const hex = (v: bigint | number): string => `0x${BigInt(v).toString(16)}`;

/** Stop signal for the step loop. */
class Stop extends Error {}

class Runner {
  readonly host: Host;
  readonly results: StepResult[] = [];
  private readonly bindings = new Map<string, unknown>();
  /** Host syscall sequence number -> step number. */
  private readonly seqStep = new Map<number, number>();
  /** The step being finished, which `results` does not hold yet (for rewrite()). */
  private current: { n: number; name?: string | undefined; loc: Loc } | undefined;
  private readonly loopVars: Array<[string, bigint]> = [];
  /** Per vCPU fd: the loaded program and its reads with an expected result not yet checked. */
  private readonly readExpects = new Map<
    number,
    { program: GuestProgram; pending: Array<{ i: number; gpa: bigint; want: Uint8Array }> }
  >();
  private n = 0;
  readonly env: EvalEnv = {
    constant: (name) => uapiConstant(name),
    lookup: (name) => {
      for (let i = this.loopVars.length - 1; i >= 0; i--)
        if (this.loopVars[i]![0] === name) return this.loopVars[i]![1];
      return this.bindings.get(name);
    },
  };

  constructor(
    readonly flow: Flow,
    readonly profile: KernelProfile,
    readonly platform: PlatformName,
    readonly opts: RunOptions,
  ) {
    this.host = createHost({ kernel: profile, platform, invariants: opts.invariants ?? true });
  }

  run(): void {
    try {
      this.steps(this.flow.steps);
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
    }
  }

  private steps(list: readonly Step[]): void {
    for (const s of list) {
      if (s.kind === 'repeat') this.repeat(s);
      else this.leaf(s);
    }
  }

  private repeat(s: Extract<Step, { kind: 'repeat' }>): void {
    const body = (v: bigint | undefined): void => {
      if (s.var !== undefined && v !== undefined) this.loopVars.push([s.var, v]);
      try {
        this.steps(s.steps);
      } finally {
        if (s.var !== undefined && v !== undefined) this.loopVars.pop();
      }
    };
    try {
      if (s.to !== undefined) {
        const from = s.from ? evalBig(expr(s.from), this.env) : 0n;
        const to = evalBig(expr(s.to), this.env);
        const step = s.step ? evalBig(expr(s.step), this.env) : 1n;
        if (step <= 0n) throw new FlowEvalError('repeat step must be positive');
        for (let v = from; v < to; v += step) body(v);
      } else if (s.over !== undefined) {
        for (const item of s.over) body(evalBig(expr(item), this.env));
      } else if (s.until !== undefined) {
        for (let i = 0; ; i++) {
          if (i >= s.max)
            throw new FlowEvalError(`repeat did not reach its until condition in ${s.max} iterations`);
          body(undefined);
          if (evalBig(expr(s.until), this.env) !== 0n) break;
        }
      }
    } catch (e) {
      if (e instanceof FlowEvalError) this.flowError(s, e.message);
      else throw e;
    }
  }

  private flowError(s: Step, message: string): void {
    this.record(
      s,
      this.describe(s),
      { kind: 'flow-error', message },
      undefined,
      false,
      `flow error: ${message}`,
    );
  }

  /** Evaluate a value for the model: numbers (number when exact), structs, arrays, names. */
  private value(v: CValue): unknown {
    switch (v.k) {
      case 'lit':
        return v.v;
      case 'expr': {
        const r = evalRaw(v.e, this.env);
        if (typeof r === 'bigint') return toArg(r);
        if (r !== null && typeof r === 'object') return structuredCloneish(r);
        return r;
      }
      case 'arr':
        return v.items.map((x) => this.value(x));
      case 'obj':
        return Object.fromEntries(v.fields.map(([k, x]) => [k, this.value(x)]));
    }
  }

  private int(v: CValue): number | bigint {
    if (v.k === 'lit' && typeof v.v === 'number') return v.v;
    return toArg(v.k === 'expr' ? evalBig(v.e, this.env) : BigInt(String(v.k === 'lit' ? v.v : 0)));
  }

  private num(v: CValue): number {
    return Number(this.int(v));
  }

  private bytes(d: CData): Uint8Array {
    switch (d.k) {
      case 'raw':
        return d.bytes;
      case 'bytes':
        return Uint8Array.from(d.items, (x) => Number(BigInt.asUintN(8, BigInt(this.int(x)))));
      case 'fill': {
        const n = this.num(d.length);
        if (n < 0 || n > 1 << 30) throw new FlowEvalError(`data length ${n} out of range`);
        return new Uint8Array(n).fill(Number(BigInt.asUintN(8, BigInt(this.int(d.fill)))));
      }
    }
  }

  private describe(s: Step): string {
    switch (s.kind) {
      case 'open':
        return `open ${s.path_}`;
      case 'ioctl': {
        const id = s.arg?.k === 'obj' ? s.arg.fields.find(([k]) => k === 'id')?.[1] : undefined;
        return `ioctl ${s.request}${id?.k === 'lit' && typeof id.v === 'string' ? `(${id.v})` : ''}`;
      }
      case 'run':
        return 'ioctl KVM_RUN';
      case 'guest':
        return 'guest program';
      case 'write':
        return 'write host memory';
      case 'read':
        return 'read host memory';
      default:
        return s.kind;
    }
  }

  private leaf(s: Exclude<Step, { kind: 'repeat' }>): void {
    const call = this.describe(s);
    const h = this.host;
    const seqBefore = h.seq;
    let outcome: StepOutcome;
    let exit: string | undefined;
    let exitDetail = '';
    let outStruct: Record<string, unknown> | undefined;
    let readBack: string | undefined;
    try {
      try {
        const value = this.execute(
          s,
          (o) => {
            outStruct = o;
          },
          (why) => {
            readBack = why;
          },
        );
        outcome = { kind: 'ok', value };
      } finally {
        if (s.kind === 'run') {
          const vcpu = this.num(s.vcpu);
          try {
            const r = h.kvmRun(vcpu);
            exit = exitName(r.exit_reason);
            exitDetail = describeExit(r as unknown as Record<string, unknown>);
            if (s.as) this.bindings.set(s.as, structuredCloneish(r));
            readBack = this.checkReads(vcpu);
          } catch {
            // Not a vCPU fd: the KVM_RUN itself reported it.
          }
        }
      }
    } catch (e) {
      outcome = this.classify(e);
    }
    // Every syscall this step made maps to its number (provenance "call #N" -> "step K").
    const n = this.n + 1;
    for (let q = seqBefore + 1; q <= h.seq; q++) this.seqStep.set(q, n);
    // A cause may lie in this very step (a page prepared by this KVM_RUN): name it too.
    this.current = { n, name: s.name, loc: s.loc };
    // Provenance names syscalls by number; the reader knows the flow's steps.
    if (outcome.kind === 'errno' && outcome.cause)
      outcome = { ...outcome, cause: this.rewrite(outcome.cause) };
    else if (outcome.kind === 'invariant') outcome = { ...outcome, detail: this.rewrite(outcome.detail) };
    else if (outcome.kind === 'signal') outcome = { ...outcome, reason: this.rewrite(outcome.reason) };
    if (readBack !== undefined) readBack = this.rewrite(readBack);
    const { asExpected, why } = this.check(s.expect, outcome, exit, outStruct, readBack);
    let explanation: string | undefined;
    if (!asExpected || outcome.kind !== 'ok')
      explanation = this.explain(n, s, call, outcome, exit, exitDetail, why);
    this.record(s, call, outcome, exit, asExpected, explanation);
  }

  private record(
    s: Step,
    call: string,
    outcome: StepOutcome,
    exit: string | undefined,
    asExpected: boolean,
    explanation: string | undefined,
  ): void {
    const n = ++this.n;
    const iteration = this.loopVars.length
      ? Object.fromEntries(this.loopVars.map(([k, v]) => [k, v < 0n || v > 4095n ? hex(v) : String(v)]))
      : undefined;
    const r: StepResult = {
      n,
      name: s.name,
      call,
      loc: s.loc,
      iteration,
      outcome,
      exit,
      expected: expectText(s.kind === 'repeat' ? { result: 'ok' } : s.expect),
      asExpected,
      explanation,
    };
    this.results.push(r);
    if (!asExpected && !this.opts.keepGoing) throw new Stop();
  }

  private classify(e: unknown): StepOutcome {
    if (e instanceof SyscallError)
      return { kind: 'errno', code: e.code, errno: e.errno, reason: e.reason, cause: e.explanation };
    if (e instanceof HostFault)
      return { kind: 'signal', signal: e.signal, address: hex(e.address), reason: e.reason };
    if (e instanceof InvariantViolation)
      return { kind: 'invariant', invariant: e.invariant, detail: e.detail };
    if (e instanceof FlowEvalError) return { kind: 'flow-error', message: e.message };
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { kind: 'defect', message: msg };
  }

  /** Run one step's call; returns its value for reports (numbers as numbers, addresses as hex). */
  private execute(
    s: Exclude<Step, { kind: 'repeat' }>,
    setOut: (o: Record<string, unknown>) => void,
    setReadBack: (why: string) => void,
  ): number | string {
    const h = this.host;
    switch (s.kind) {
      case 'open': {
        const fd = h.open(s.path_);
        if (s.as) this.bindings.set(s.as, BigInt(fd));
        return fd;
      }
      case 'ioctl': {
        const fd = this.num(s.fd);
        const arg = s.arg === undefined ? undefined : this.value(s.arg);
        const isStruct = arg !== null && typeof arg === 'object';
        if (isStruct) setOut(arg as Record<string, unknown>);
        try {
          const r = h.ioctl(fd, s.request, arg);
          if (s.as) this.bindings.set(s.as, BigInt(r));
          return r;
        } finally {
          if (s.out && isStruct) this.bindings.set(s.out, arg);
        }
      }
      case 'mmap': {
        const addr = h.mmap({
          length: this.int(s.length),
          prot: this.num(s.prot),
          flags: this.num(s.flags),
          fd: s.fd === undefined ? undefined : this.num(s.fd),
          offset: s.offset === undefined ? undefined : this.int(s.offset),
          addr: s.addr === undefined ? undefined : this.int(s.addr),
        });
        if (s.as) this.bindings.set(s.as, BigInt(addr));
        return hex(addr);
      }
      case 'munmap':
        return h.munmap(this.int(s.addr), this.int(s.length));
      case 'write': {
        const data = this.bytes(s.data);
        h.memory.write(this.int(s.addr), data);
        return data.length;
      }
      case 'madvise':
        return h.madvise(this.int(s.addr), this.int(s.length), this.num(s.advice));
      case 'mprotect':
        return h.mprotect(this.int(s.addr), this.int(s.length), this.num(s.prot));
      case 'read': {
        const addr = this.int(s.addr);
        const got = h.memory.read(addr, this.num(s.length));
        if (s.want !== undefined) {
          const want = this.bytes(s.want);
          const at = firstDifference(got, want);
          if (at !== undefined)
            setReadBack(
              `read of ${got.length} bytes at ${hex(addr)} returned ${hexBytes(got, at)} at offset ${at}, expected ${hexBytes(want, at)}`,
            );
        }
        return got.length;
      }
      case 'fallocate':
        return h.fallocate(this.num(s.fd), this.num(s.mode), this.int(s.offset), this.int(s.len));
      case 'close':
        return h.close(this.num(s.fd));
      case 'guest': {
        const ops: GuestOp[] = s.program.map((op) => {
          switch (op.op) {
            case 'read':
              return {
                op: 'read',
                gpa: this.int(op.gpa),
                length: this.num(op.length),
                shared: op.shared,
                emulated: op.emulated,
              };
            case 'write':
              return {
                op: 'write',
                gpa: this.int(op.gpa),
                data: this.bytes(op.data),
                shared: op.shared,
                emulated: op.emulated,
              };
            case 'accept':
              return { op: 'accept', gpa: this.int(op.gpa), size: this.int(op.size) };
            case 'map_gpa':
              return {
                op: 'map_gpa',
                gpa: this.int(op.gpa),
                npages: this.int(op.npages),
                private: op.private,
                via: op.via,
              };
            case 'terminate':
              return { op: 'terminate', reasonSet: op.reasonSet, reasonCode: op.reasonCode };
            case 'shutdown':
              return { op: 'shutdown' };
            default:
              return { op: 'hlt' };
          }
        });
        const vcpu = this.num(s.vcpu);
        const guest = h.guest(vcpu);
        guest.load(ops);
        const pending: Array<{ i: number; gpa: bigint; want: Uint8Array }> = [];
        s.program.forEach((op, i) => {
          if (op.op === 'read' && op.expect !== undefined)
            pending.push({
              i,
              gpa: BigInt(ops[i]!.op === 'read' ? ops[i]!.gpa : 0),
              want: this.bytes(op.expect),
            });
        });
        this.readExpects.set(vcpu, { program: guest.program, pending });
        return ops.length;
      }
      case 'run':
        return h.ioctl(this.num(s.vcpu), 'KVM_RUN');
    }
  }

  private check(
    ex: Expect,
    o: StepOutcome,
    exit: string | undefined,
    out: Record<string, unknown> | undefined,
    readBack?: string,
  ): { asExpected: boolean; why?: string } {
    const got = outcomeText(o);
    switch (ex.result) {
      case 'ok':
        if (o.kind !== 'ok') return { asExpected: false, why: `expected success, got ${got}` };
        break;
      case 'any':
        if (o.kind !== 'ok' && o.kind !== 'errno' && o.kind !== 'signal')
          return { asExpected: false, why: `got ${got}` };
        break;
      default:
        if (!(o.kind === 'errno' && o.code === ex.result) && !(o.kind === 'signal' && o.signal === ex.result))
          return { asExpected: false, why: `expected ${ex.result}, got ${got}` };
    }
    if (ex.exit !== undefined && exit !== ex.exit)
      return { asExpected: false, why: `expected exit ${ex.exit}, got ${exit ?? 'no exit'}` };
    try {
      if (ex.value !== undefined && o.kind === 'ok') {
        const want = BigInt(this.int(ex.value));
        const have = typeof o.value === 'number' ? BigInt(o.value) : BigInt(o.value);
        if (want !== have) return { asExpected: false, why: `expected return value ${want}, got ${have}` };
      }
      if (ex.bits !== undefined && o.kind === 'ok') {
        const want = BigInt(this.int(ex.bits));
        const have = BigInt(o.value);
        if ((have & want) !== want)
          return {
            asExpected: false,
            why: `expected bits 0x${want.toString(16)} set in the return value, got 0x${have.toString(16)}`,
          };
      }
      for (const [field, v] of ex.out ?? []) {
        const want = BigInt(this.int(v));
        // A dotted path reaches nested structs: `data.len` of a kvm_sev_cmd.
        let cur: unknown = out;
        for (const part of field.split('.'))
          cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined;
        const have = typeof cur === 'bigint' || typeof cur === 'number' ? BigInt(cur) : undefined;
        if (have !== want)
          return {
            asExpected: false,
            why: `expected ${field} = ${hex(want)} after the call, got ${have === undefined ? 'nothing' : hex(have)}`,
          };
      }
    } catch (e) {
      if (e instanceof FlowEvalError) return { asExpected: false, why: `flow error: ${e.message}` };
      throw e;
    }
    if (readBack !== undefined) return { asExpected: false, why: readBack };
    return { asExpected: true };
  }

  /**
   * After a KVM_RUN: the guest reads with an expected result that the run completed (the guest's
   * pc is past them) are compared with the bytes they returned. Returns the first difference.
   */
  private checkReads(vcpu: number): string | undefined {
    const entry = this.readExpects.get(vcpu);
    if (!entry) return undefined;
    const prog = this.host.guest(vcpu).program;
    if (prog !== entry.program) return undefined;
    let first: string | undefined;
    entry.pending = entry.pending.filter((r) => {
      if (r.i >= prog.pc) return true;
      const exception = prog.results[r.i]?.exception;
      if (exception !== undefined) {
        first ??= `guest op ${r.i} (read at gpa ${hex(r.gpa)}) took ${exception}`;
        return false;
      }
      const got = prog.results[r.i]?.data ?? new Uint8Array(0);
      const at = firstDifference(got, r.want);
      if (at !== undefined && first === undefined)
        first =
          `guest op ${r.i} (read of ${got.length} bytes at gpa ${hex(r.gpa)}) returned ` +
          `${hexBytes(got, at)} at offset ${at}, expected ${hexBytes(r.want, at)}`;
      return false;
    });
    return first;
  }

  /** "call #N (path)" -> "step K 'name' (line L), path". */
  private rewrite(text: string): string {
    let out = '';
    let i = 0;
    const re = /call #(\d+)/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      out += text.slice(i, m.index);
      let end = m.index + m[0].length;
      let path: string | undefined;
      if (text.startsWith(' (', end)) {
        let depth = 0;
        let j = end + 1;
        for (; j < text.length; j++) {
          if (text[j] === '(') depth++;
          else if (text[j] === ')' && --depth === 0) break;
        }
        if (j < text.length) {
          path = text.slice(end + 2, j);
          end = j + 1;
        }
      }
      const k = this.seqStep.get(Number(m[1]));
      const r = k === undefined ? undefined : k === this.current?.n ? this.current : this.results[k - 1];
      const who =
        r === undefined ? `call #${m[1]}` : `step ${k}${r.name ? ` '${r.name}'` : ''} (line ${r.loc.line})`;
      out += path ? `${who}, ${path}` : who;
      i = end;
      re.lastIndex = end;
    }
    return out + text.slice(i);
  }

  private explain(
    n: number,
    s: Step,
    call: string,
    o: StepOutcome,
    exit: string | undefined,
    exitDetail: string,
    why: string | undefined,
  ): string {
    const at = `step ${n}${s.name ? ` '${s.name}'` : ''} (${s.loc.file}:${s.loc.line}:${s.loc.col})`;
    const parts = [`${at}: ${call}`];
    switch (o.kind) {
      case 'errno':
        parts.push(`returned ${o.code} (errno ${o.errno}) from ${o.reason}`);
        if (o.cause) parts.push(`because ${o.cause}`);
        break;
      case 'signal':
        parts.push(`raised ${o.signal} at ${o.address} (${o.reason})`);
        break;
      case 'invariant':
        parts.push(`violated the invariant ${o.invariant}: ${o.detail}`);
        break;
      case 'flow-error':
        parts.push(`could not run: ${o.message}`);
        break;
      case 'defect':
        parts.push(`hit a model defect: ${o.message}`);
        break;
      case 'ok':
        parts.push(`succeeded (returned ${o.value})`);
        break;
    }
    if (exit) parts.push(`exit ${exit}${exitDetail}`);
    if (why) parts.push(why);
    return parts.join('; ');
  }
}

function expr(v: CValue) {
  if (v.k !== 'expr')
    return { k: 'num' as const, v: BigInt(v.k === 'lit' && typeof v.v === 'number' ? v.v : 0) };
  return v.e;
}

/** A plain deep copy (bigint and typed arrays kept), for binding kvm_run and structs. */
function structuredCloneish<T>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return v.slice() as T;
  if (Array.isArray(v)) return v.map((x) => structuredCloneish(x)) as T;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, structuredCloneish(x)])) as T;
}

/** The first offset where two byte strings differ (a length difference counts), or undefined. */
function firstDifference(a: Uint8Array, b: Uint8Array): number | undefined {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? undefined : n;
}

/** Up to 8 bytes from `at`, as hex. */
function hexBytes(b: Uint8Array, at: number): string {
  const part = Array.from(b.subarray(at, at + 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  return part ? `[${part}${b.length > at + 8 ? ' ...' : ''}]` : '[end of data]';
}

function describeExit(r: Record<string, unknown>): string {
  const mf = r['memory_fault'] as { flags: bigint; gpa: bigint; size: bigint } | undefined;
  if (mf) return ` (gpa ${hex(mf.gpa)}, size ${hex(mf.size)}, ${mf.flags & 8n ? 'private' : 'shared'})`;
  const hc = r['hypercall'] as { nr: bigint; args: bigint[] } | undefined;
  if (hc) return ` (nr ${hc.nr}, args ${hc.args.slice(0, 3).map(hex).join(', ')})`;
  return '';
}

export function outcomeText(o: StepOutcome): string {
  switch (o.kind) {
    case 'ok':
      return `ok (${o.value})`;
    case 'errno':
      return o.code;
    case 'signal':
      return o.signal;
    case 'invariant':
      return `invariant ${o.invariant}`;
    case 'flow-error':
      return `flow error (${o.message})`;
    case 'defect':
      return `model defect (${o.message})`;
  }
}

function expectText(e: Expect): string {
  let t: string = e.result;
  if (e.exit) t += `, exit ${e.exit}`;
  if (e.value)
    t += `, value ${e.value.k === 'expr' ? e.value.src : String(e.value.k === 'lit' ? e.value.v : '')}`;
  if (e.bits) t += `, bits ${e.bits.k === 'expr' ? e.bits.src : String(e.bits.k === 'lit' ? e.bits.v : '')}`;
  if (e.out?.length)
    t += `, ${e.out.map(([k, v]) => `${k} = ${v.k === 'expr' ? v.src : v.k === 'lit' ? String(v.v) : '...'}`).join(', ')}`;
  return t;
}

/** Execute a flow against one kernel profile (and the flow's platform unless overridden). */
export function runFlow(flow: Flow, opts: RunOptions): FlowRun {
  const profile = typeof opts.kernel === 'string' ? getProfile(opts.kernel) : opts.kernel;
  if (!profile)
    throw new FlowRunError(`unknown kernel '${String(opts.kernel)}'; known: ${kernels().join(', ')}`);
  const platform = opts.platform ?? flow.platform;
  if (platform !== 'generic' && platform !== 'snp' && platform !== 'tdx')
    throw new FlowRunError(`unknown platform '${String(platform)}'; known: generic, snp, tdx`);
  const r = new Runner(flow, profile, platform, opts);
  r.run();
  const firstUnexpected = r.results.find((x) => !x.asExpected);
  return {
    flow: { name: flow.name, title: flow.title, file: flow.file },
    kernel: profile.name,
    platform,
    steps: r.results,
    passed: firstUnexpected === undefined,
    firstUnexpected,
  };
}
