/**
 * Flow loader: YAML text -> Flow, or every problem with file:line:column and what was expected.
 * Positions come from the yaml package's document API (parseDocument + LineCounter); structure is
 * checked with the zod schema of schema.ts, one step at a time so a bad step gets its own message;
 * then names are resolved (constants exist, $names are bound before use, outcomes name real
 * profiles and steps).
 */
import { readFileSync } from 'node:fs';
import { type Document, isMap, isScalar, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { kernels } from '../kernel/profiles/index.js';
import { uapi } from '../uapi/index.js';
import { type Expr, ExprError, exprNames, parseExpr } from './expr.js';
import {
  FlowSchema,
  type GuestOpInput,
  GuestOpSchema,
  RepeatSpec,
  STEP_KINDS,
  type StepKind,
} from './schema.js';
import type { CData, CValue, Expect, Flow, GuestOpSpec, Loc, Outcome, ResultExpect, Step } from './types.js';

export interface Problem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** A flow that cannot be loaded: one line per problem. */
export class FlowLoadError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'FlowLoadError';
  }
}

type Path = ReadonlyArray<string | number>;

/** Numeric uAPI constants by name (what expressions may use). */
function constantTable(): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const [k, v] of Object.entries(uapi)) if (typeof v === 'number') m.set(k, BigInt(v));
  return m;
}
let constants: Map<string, bigint> | undefined;
export function uapiConstant(name: string): bigint | undefined {
  constants ??= constantTable();
  return constants.get(name);
}

/** Fields whose string value is a name, not an expression. */
const NAME_FIELDS = new Set(['id']);

class Ctx {
  readonly problems: Problem[] = [];
  readonly lc = new LineCounter();
  doc!: Document;
  constructor(readonly file: string) {}

  posOf(offset: number): { line: number; col: number } {
    const p = this.lc.linePos(offset);
    return { line: p.line, col: p.col };
  }

  /** The node at path, or the nearest ancestor that exists. */
  nodeAt(path: Path): Node | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true);
      if (node && typeof node === 'object' && 'range' in (node as object)) return node as Node;
    }
    return undefined;
  }

  locAt(path: Path, extra = 0): Loc {
    const node = this.nodeAt(path);
    const off = node?.range ? node.range[0] + extra : 0;
    return { file: this.file, ...this.posOf(off) };
  }

  /** Position of a key inside the map at path (for unknown keys). */
  keyLoc(path: Path, key: string): Loc {
    const node = this.doc.getIn(path, true);
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = pair.key;
        if (isScalar(k) && k.value === key && k.range) return { file: this.file, ...this.posOf(k.range[0]) };
      }
    }
    return this.locAt(path);
  }

  add(loc: Loc, message: string): void {
    this.problems.push({ file: loc.file, line: loc.line, col: loc.col, message });
  }

  err(path: Path, message: string): void {
    this.add(this.locAt(path), `${showPath(path)}${message}`);
  }
}

function showPath(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s ? `${s}: ` : '';
}

/** A friendly description of what a union position accepts, by the field's name. */
function unionExpectation(path: Path): string | undefined {
  const last = path[path.length - 1];
  const prev = path[path.length - 2];
  if (last === 'expect' && prev === 'read')
    return 'expected bytes: a list [1, 2], {fill, length}, {hex} or {text}';
  if (last === 'expect')
    return 'expected ok, any, an errno name (EEXIST), a signal (SIGBUS) or a map {result, exit, value, out}';
  if (last === 'data') return 'expected bytes: a list [1, 2], {fill, length}, {hex} or {text}';
  if (prev === 'outcomes') return "expected ok or a map {result: ERRNO, at: step-name, why: '...'}";
  if (prev === 'program') return 'expected a guest op: {op: read|write|accept|map_gpa|hlt, ...}';
  if (last === 'file') return 'expected a file name or a list of file names';
  return 'expected a number or an expression string';
}

function reportZod(ctx: Ctx, base: Path, issues: readonly z.core.$ZodIssue[], value: unknown): void {
  for (const iss of issues) {
    const path: Path = [...base, ...(iss.path as Array<string | number>)];
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) ctx.add(ctx.keyLoc(path, k), `${showPath(path)}unknown field '${k}'`);
      continue;
    }
    if (
      (iss.code === 'invalid_union' || iss.code === 'invalid_type') &&
      iss.path.length > 0 &&
      valueAt(value, iss.path as Array<string | number>) === undefined
    ) {
      ctx.err(path.slice(0, -1), `missing required field '${String(path[path.length - 1])}'`);
      continue;
    }
    if (iss.code === 'invalid_union') {
      // Report the branch that got furthest when the value is a map (its errors are the useful ones).
      const v = valueAt(value, iss.path as Array<string | number>);
      const isObj = v !== null && typeof v === 'object' && !Array.isArray(v);
      const branches = (iss.errors ?? []).filter((b) => b.length > 0);
      const objectBranch = isObj
        ? branches
            .filter((b) => !b.some((i) => i.code === 'invalid_type' && i.path.length === 0))
            .sort((a, b) => a.length - b.length)[0]
        : undefined;
      if (objectBranch && !objectBranch.every((i) => i.code === 'invalid_value' && i.path.length === 1)) {
        reportZod(ctx, path, objectBranch, v);
        continue;
      }
      ctx.err(path, unionExpectation(path) ?? 'invalid value');
      continue;
    }
    ctx.err(path, iss.message.replace(/^Invalid (input|option): /, ''));
  }
}

function valueAt(v: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur = v;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Scope of bound names while walking the steps in order. */
class Scope {
  constructor(
    readonly names: Set<string>,
    readonly parent?: Scope,
  ) {}
  has(n: string): boolean {
    return this.names.has(n) || (this.parent?.has(n) ?? false);
  }
}

class Compiler {
  readonly stepNames = new Map<string, Loc>();
  constructor(readonly ctx: Ctx) {}

  /** Parse one expression string found at path; check its names. */
  expr(src: string, path: Path, scope: Scope): CValue {
    const node = this.ctx.doc.getIn(path, true);
    const quoted = isScalar(node) && (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') ? 1 : 0;
    let e: Expr;
    try {
      e = parseExpr(src);
    } catch (err) {
      if (err instanceof ExprError) {
        this.ctx.add(
          this.ctx.locAt(path, quoted + err.offset),
          `${showPath(path)}bad expression '${src}': ${err.message}`,
        );
        return { k: 'lit', v: null };
      }
      throw err;
    }
    const names = exprNames(e);
    for (const c of names.consts) {
      if (uapiConstant(c) === undefined)
        this.ctx.err(path, `unknown constant '${c}' in '${src}' (uAPI names only; bound names start with $)`);
    }
    for (const r of names.refs) {
      if (!scope.has(r))
        this.ctx.err(path, `$${r} is not bound by an earlier step (as:, out: or a repeat var)`);
    }
    return { k: 'expr', e, src };
  }

  value(v: unknown, path: Path, scope: Scope, key?: string): CValue {
    if (typeof v === 'string')
      return key && NAME_FIELDS.has(key) ? { k: 'lit', v } : this.expr(v, path, scope);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v))
        this.ctx.err(
          path,
          `${v} is not an exact integer; write large values as a string, e.g. '0xffffffffffffffff'`,
        );
      return { k: 'lit', v };
    }
    if (typeof v === 'boolean' || v === null) return { k: 'lit', v };
    if (Array.isArray(v)) return { k: 'arr', items: v.map((x, i) => this.value(x, [...path, i], scope)) };
    if (isRecord(v))
      return {
        k: 'obj',
        fields: Object.entries(v).map(([k, x]) => [k, this.value(x, [...path, k], scope, k)] as const),
      };
    this.ctx.err(path, `unsupported value ${String(v)}`);
    return { k: 'lit', v: null };
  }

  data(v: unknown, path: Path, scope: Scope): CData {
    if (Array.isArray(v)) return { k: 'bytes', items: v.map((x, i) => this.value(x, [...path, i], scope)) };
    if (isRecord(v) && 'fill' in v)
      return {
        k: 'fill',
        fill: this.value(v['fill'], [...path, 'fill'], scope),
        length: this.value(v['length'], [...path, 'length'], scope),
      };
    if (isRecord(v) && typeof v['hex'] === 'string') {
      const hex = v['hex'].replace(/\s+/g, '');
      if (!/^([0-9a-fA-F]{2})*$/.test(hex))
        this.ctx.err([...path, 'hex'], 'expected an even number of hex digits');
      return { k: 'raw', bytes: Uint8Array.from(hex.match(/../g) ?? [], (h) => Number.parseInt(h, 16)) };
    }
    if (isRecord(v) && typeof v['text'] === 'string')
      return { k: 'raw', bytes: new TextEncoder().encode(v['text']) };
    return { k: 'raw', bytes: new Uint8Array() };
  }

  expect(v: unknown, path: Path, scope: Scope): Expect {
    if (v === undefined) return { result: 'ok' };
    if (typeof v === 'string') return { result: v as ResultExpect };
    const o = v as Record<string, unknown>;
    const exit = o['exit'] as string | undefined;
    if (exit !== undefined && (!exit.startsWith('KVM_EXIT_') || uapiConstant(exit) === undefined))
      this.ctx.err([...path, 'exit'], `unknown exit reason '${exit}' (a KVM_EXIT_* name)`);
    return {
      result: (o['result'] as ResultExpect | undefined) ?? 'ok',
      exit,
      value: o['value'] === undefined ? undefined : this.value(o['value'], [...path, 'value'], scope),
      bits: o['bits'] === undefined ? undefined : this.value(o['bits'], [...path, 'bits'], scope),
      out: isRecord(o['out'])
        ? Object.entries(o['out']).map(([k, x]) => [k, this.value(x, [...path, 'out', k], scope)] as const)
        : undefined,
    };
  }

  bind(name: string | undefined, scope: Scope): void {
    if (name) scope.names.add(name);
  }

  steps(list: unknown[], base: Path, scope: Scope): Step[] {
    const out: Step[] = [];
    list.forEach((raw, i) => {
      const s = this.step(raw, [...base, i], scope);
      if (s) out.push(s);
    });
    return out;
  }

  step(raw: unknown, path: Path, scope: Scope): Step | undefined {
    const ctx = this.ctx;
    if (!isRecord(raw)) {
      ctx.err(path, `expected a step (a map with one of: ${Object.keys(STEP_KINDS).join(', ')})`);
      return undefined;
    }
    const kinds = Object.keys(raw).filter((k): k is StepKind => k in STEP_KINDS);
    if (kinds.length === 0) {
      ctx.err(path, `a step needs one of: ${Object.keys(STEP_KINDS).join(', ')}`);
      return undefined;
    }
    if (kinds.length > 1) {
      ctx.add(
        ctx.keyLoc(path, kinds[1]!),
        `${showPath(path)}a step has one kind; found ${kinds.join(' and ')}`,
      );
      return undefined;
    }
    const kind = kinds[0]!;
    const before = ctx.problems.length;
    if (kind === 'repeat') {
      const { steps: body, ...head } = raw;
      const shell = RepeatSpec.safeParse(head['repeat']);
      if (!shell.success) reportZod(ctx, [...path, 'repeat'], shell.error.issues, head['repeat']);
      for (const k of Object.keys(head))
        if (!['repeat', 'name', 'note'].includes(k))
          ctx.add(ctx.keyLoc(path, k), `${showPath(path)}unknown field '${k}'`);
      if (!Array.isArray(body) || body.length === 0) {
        ctx.err(body === undefined ? path : [...path, 'steps'], 'a repeat needs a non-empty list of steps');
        return undefined;
      }
      if (ctx.problems.length > before) return undefined;
      const r = head['repeat'] as Record<string, unknown>;
      const hasRange = r['to'] !== undefined;
      const modes = [hasRange, r['over'] !== undefined, r['until'] !== undefined].filter(Boolean).length;
      if (modes !== 1)
        ctx.err([...path, 'repeat'], 'give exactly one of: to (a range), over (a list), until (a condition)');
      if ((hasRange || r['over'] !== undefined) && r['var'] === undefined)
        ctx.err([...path, 'repeat'], 'a range or list loop needs var');
      const name = this.stepName(head['name'], path);
      const inner = new Scope(new Set(r['var'] ? [r['var'] as string] : []), scope);
      const rp = [...path, 'repeat'];
      const from = r['from'] !== undefined ? this.value(r['from'], [...rp, 'from'], scope) : undefined;
      const to = r['to'] !== undefined ? this.value(r['to'], [...rp, 'to'], scope) : undefined;
      const step = r['step'] !== undefined ? this.value(r['step'], [...rp, 'step'], scope) : undefined;
      const over = Array.isArray(r['over'])
        ? r['over'].map((x, i) => this.value(x, [...rp, 'over', i], scope))
        : undefined;
      const steps = this.steps(body, [...path, 'steps'], inner);
      // Names bound in the body stay visible after the loop (the VMM's variables live on).
      for (const n of inner.names) if (n !== r['var']) scope.names.add(n);
      const until =
        typeof r['until'] === 'string' ? this.expr(r['until'], [...rp, 'until'], inner) : undefined;
      return {
        kind: 'repeat',
        name,
        note: head['note'] as string | undefined,
        loc: ctx.locAt(path),
        path: showPath(path).slice(0, -2),
        expect: { result: 'ok' },
        var: r['var'] as string | undefined,
        from,
        to,
        step,
        over,
        until,
        max: (r['max'] as number | undefined) ?? 1000,
        steps,
      };
    }
    const parsed = STEP_KINDS[kind].safeParse(raw);
    if (!parsed.success) {
      reportZod(ctx, path, parsed.error.issues, raw);
      return undefined;
    }
    const s = raw as Record<string, unknown>;
    const base = {
      name: this.stepName(s['name'], path),
      note: s['note'] as string | undefined,
      loc: ctx.locAt(path),
      path: showPath(path).slice(0, -2),
      expect: this.expect(s['expect'], [...path, 'expect'], scope),
    };
    const v = (key: string): CValue => this.value(s[key], [...path, key], scope);
    const sub = (obj: string, key: string): CValue | undefined => {
      const o = s[obj] as Record<string, unknown>;
      return o[key] === undefined ? undefined : this.value(o[key], [...path, obj, key], scope);
    };
    let step: Step;
    switch (kind) {
      case 'open':
        step = { ...base, kind, path_: s['open'] as string, as: s['as'] as string | undefined };
        break;
      case 'ioctl':
        step = {
          ...base,
          kind,
          request: s['ioctl'] as string,
          fd: v('fd'),
          arg: s['arg'] === undefined ? undefined : v('arg'),
          as: s['as'] as string | undefined,
          out: s['out'] as string | undefined,
        };
        break;
      case 'mmap':
        step = {
          ...base,
          kind,
          length: sub('mmap', 'length')!,
          prot: sub('mmap', 'prot')!,
          flags: sub('mmap', 'flags')!,
          fd: sub('mmap', 'fd'),
          offset: sub('mmap', 'offset'),
          addr: sub('mmap', 'addr'),
          as: s['as'] as string | undefined,
        };
        break;
      case 'munmap':
        step = { ...base, kind, addr: sub('munmap', 'addr')!, length: sub('munmap', 'length')! };
        break;
      case 'write':
        step = {
          ...base,
          kind,
          addr: sub('write', 'addr')!,
          data: this.data((s['write'] as Record<string, unknown>)['data'], [...path, 'write', 'data'], scope),
        };
        break;
      case 'madvise':
        step = {
          ...base,
          kind,
          addr: sub('madvise', 'addr')!,
          length: sub('madvise', 'length')!,
          advice: sub('madvise', 'advice')!,
        };
        break;
      case 'mprotect':
        step = {
          ...base,
          kind,
          addr: sub('mprotect', 'addr')!,
          length: sub('mprotect', 'length')!,
          prot: sub('mprotect', 'prot')!,
        };
        break;
      case 'read': {
        const r = s['read'] as Record<string, unknown>;
        step = {
          ...base,
          kind,
          addr: sub('read', 'addr')!,
          length: sub('read', 'length')!,
          want:
            r['expect'] === undefined
              ? undefined
              : this.data(r['expect'], [...path, 'read', 'expect'], scope),
        };
        break;
      }
      case 'fallocate':
        step = {
          ...base,
          kind,
          fd: sub('fallocate', 'fd')!,
          mode: sub('fallocate', 'mode')!,
          offset: sub('fallocate', 'offset')!,
          len: sub('fallocate', 'len')!,
        };
        break;
      case 'close':
        step = { ...base, kind, fd: v('close') };
        break;
      case 'guest':
        step = {
          ...base,
          kind,
          vcpu: v('guest'),
          program: (s['program'] as GuestOpInput[]).map((op, i) =>
            this.guestOp(op, [...path, 'program', i], scope),
          ),
        };
        break;
      case 'run':
        step = { ...base, kind, vcpu: v('run'), as: s['as'] as string | undefined };
        break;
    }
    if ('as' in step) this.bind(step.as, scope);
    if (step.kind === 'ioctl') this.bind(step.out, scope);
    return step;
  }

  guestOp(op: GuestOpInput, path: Path, scope: Scope): GuestOpSpec {
    const v = (k: string): CValue => this.value((op as Record<string, unknown>)[k], [...path, k], scope);
    switch (op.op) {
      case 'read':
        return {
          op: 'read',
          gpa: v('gpa'),
          length: v('length'),
          shared: op.shared,
          emulated: op.emulated,
          expect: op.expect === undefined ? undefined : this.data(op.expect, [...path, 'expect'], scope),
        };
      case 'write':
        return {
          op: 'write',
          gpa: v('gpa'),
          data: this.data(op.data, [...path, 'data'], scope),
          shared: op.shared,
          emulated: op.emulated,
        };
      case 'accept':
        return { op: 'accept', gpa: v('gpa'), size: v('size') };
      case 'map_gpa':
        return { op: 'map_gpa', gpa: v('gpa'), npages: v('npages'), private: op.private, via: op.via };
      case 'terminate':
        return { op: 'terminate', reasonSet: op.reasonSet, reasonCode: op.reasonCode };
      case 'shutdown':
        return { op: 'shutdown' };
      default:
        return { op: 'hlt' };
    }
  }

  stepName(name: unknown, path: Path): string | undefined {
    if (typeof name !== 'string') return undefined;
    const prev = this.stepNames.get(name);
    if (prev) this.ctx.err([...path, 'name'], `step name '${name}' is already used at line ${prev.line}`);
    else this.stepNames.set(name, this.ctx.locAt([...path, 'name']));
    return name;
  }
}

void GuestOpSchema;

/** Parse and check a flow from its text. Throws FlowLoadError listing every problem. */
export function parseFlow(text: string, file: string): Flow {
  const ctx = new Ctx(file);
  const doc = parseDocument(text, { lineCounter: ctx.lc, prettyErrors: false, uniqueKeys: true });
  ctx.doc = doc;
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? ctx.posOf(e.pos[0]);
    ctx.add({ file, line: pos.line, col: pos.col }, `YAML: ${e.message.split('\n')[0]}`);
  }
  if (ctx.problems.length) throw new FlowLoadError(ctx.problems);
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (!isRecord(raw)) {
    ctx.add(
      { file, line: 1, col: 1 },
      'expected a flow: a map with name, title, platform, source, outcomes, steps',
    );
    throw new FlowLoadError(ctx.problems);
  }
  // The top level without the steps, then each step on its own (precise messages per step).
  const shell = FlowSchema.omit({ steps: true }).safeParse(
    Object.fromEntries(Object.entries(raw).filter(([k]) => k !== 'steps')),
  );
  if (!shell.success) reportZod(ctx, [], shell.error.issues, raw);
  const stepsRaw = raw['steps'];
  if (!Array.isArray(stepsRaw) || stepsRaw.length === 0) {
    if (stepsRaw === undefined) ctx.add(ctx.locAt([]), "missing required field 'steps' (a list of steps)");
    else ctx.err(['steps'], 'expected a non-empty list of steps');
  }
  const comp = new Compiler(ctx);
  const steps = Array.isArray(stepsRaw) ? comp.steps(stepsRaw, ['steps'], new Scope(new Set())) : [];
  const outcomes = new Map<string, Outcome>();
  if (shell.success) {
    const known = kernels();
    for (const [k, o] of Object.entries(shell.data.outcomes)) {
      const loc = ctx.keyLoc(['outcomes'], k);
      if (k !== 'others' && !known.includes(k)) {
        ctx.add(loc, `outcomes: unknown kernel profile '${k}' (known: ${known.join(', ')}, or others)`);
        continue;
      }
      const oc: Outcome =
        o === 'ok'
          ? { result: 'ok', loc }
          : { result: o.result as Outcome['result'], at: o.at, why: o.why, loc };
      if (oc.result !== 'ok' && oc.at === undefined)
        ctx.err(['outcomes', k], `result ${oc.result} needs at: (the step that fails)`);
      if (oc.at !== undefined && !comp.stepNames.has(oc.at))
        ctx.err(['outcomes', k, 'at'], `no step is named '${oc.at}'`);
      outcomes.set(k, oc);
    }
  }
  if (ctx.problems.length) throw new FlowLoadError(sortProblems(ctx.problems));
  const d = shell.data!;
  return {
    file,
    name: d.name,
    title: d.title,
    description: d.description,
    platform: d.platform,
    source: {
      vmm: d.source.vmm,
      version: d.source.version,
      files: typeof d.source.file === 'string' ? [d.source.file] : d.source.file,
      url: d.source.url,
      notes: d.source.notes,
    },
    outcomes,
    steps,
  };
}

function sortProblems(ps: Problem[]): Problem[] {
  return [...ps].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Read and load a flow file. */
export function loadFlow(file: string): Flow {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new FlowLoadError([{ file, line: 1, col: 1, message: `cannot read the flow file (${code})` }]);
  }
  return parseFlow(text, file);
}
