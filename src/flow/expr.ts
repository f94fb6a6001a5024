/**
 * Flow expressions: integers (decimal, 0x, 0o, 0b, with _ separators), uAPI constant names,
 * bound names ($vm, $exit.memory_fault.gpa, $r.args[0]), and C operators
 * (unary - ~ !, * / %, + -, << >>, & ^ |, comparisons, && ||). Arithmetic is on bigint, so u64
 * flags and addresses are exact. Parsing happens when the flow is loaded (errors carry positions);
 * evaluation when the step runs.
 */

export type Expr =
  | { k: 'num'; v: bigint }
  | { k: 'const'; name: string }
  | { k: 'ref'; name: string; path: Array<string | Expr> }
  | { k: 'un'; op: string; a: Expr }
  | { k: 'bin'; op: string; a: Expr; b: Expr };

export class ExprError extends Error {
  constructor(
    message: string,
    /** Character offset inside the expression string. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'ExprError';
  }
}

interface Token {
  t: 'num' | 'id' | 'ref' | 'op' | 'end';
  s: string;
  at: number;
}

const OPS = [
  '<<',
  '>>',
  '<=',
  '>=',
  '==',
  '!=',
  '&&',
  '||',
  '+',
  '-',
  '*',
  '/',
  '%',
  '&',
  '|',
  '^',
  '~',
  '!',
  '<',
  '>',
  '(',
  ')',
  '[',
  ']',
  '.',
];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const num = /^(0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[0-9][0-9_]*)/.exec(src.slice(i));
    if (num) {
      out.push({ t: 'num', s: num[0], at: i });
      i += num[0].length;
      if (/[A-Za-z_]/.test(src[i] ?? '')) throw new ExprError(`bad number '${num[0]}${src[i]}'`, i);
      continue;
    }
    const id = /^\$?[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
    if (id) {
      out.push({ t: id[0].startsWith('$') ? 'ref' : 'id', s: id[0], at: i });
      i += id[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new ExprError(`unexpected character '${c}'`, i);
    out.push({ t: 'op', s: op, at: i });
    i += op.length;
  }
  out.push({ t: 'end', s: '', at: src.length });
  return out;
}

const BINARY: Array<readonly string[]> = [
  ['||'],
  ['&&'],
  ['==', '!=', '<', '<=', '>', '>='],
  ['|'],
  ['^'],
  ['&'],
  ['<<', '>>'],
  ['+', '-'],
  ['*', '/', '%'],
];

export function parseExpr(src: string): Expr {
  const toks = tokenize(src);
  let p = 0;
  const peek = (): Token => toks[p]!;
  const expectOp = (s: string): void => {
    const t = peek();
    if (t.t !== 'op' || t.s !== s)
      throw new ExprError(`expected '${s}'${t.t === 'end' ? ' at end' : ` before '${t.s}'`}`, t.at);
    p++;
  };
  const level = (n: number): Expr => {
    if (n === BINARY.length) return unary();
    let a = level(n + 1);
    for (;;) {
      const t = peek();
      if (t.t !== 'op' || !BINARY[n]!.includes(t.s)) return a;
      p++;
      a = { k: 'bin', op: t.s, a, b: level(n + 1) };
    }
  };
  const unary = (): Expr => {
    const t = peek();
    if (t.t === 'op' && (t.s === '-' || t.s === '~' || t.s === '!' || t.s === '+')) {
      p++;
      return { k: 'un', op: t.s, a: unary() };
    }
    return primary();
  };
  const primary = (): Expr => {
    const t = peek();
    p++;
    switch (t.t) {
      case 'num':
        return { k: 'num', v: BigInt(t.s.replaceAll('_', '')) };
      case 'id':
        return { k: 'const', name: t.s };
      case 'ref': {
        const path: Array<string | Expr> = [];
        for (;;) {
          const n = peek();
          if (n.t === 'op' && n.s === '.') {
            p++;
            const f = peek();
            if (f.t !== 'id') throw new ExprError('expected a field name after .', f.at);
            p++;
            path.push(f.s);
          } else if (n.t === 'op' && n.s === '[') {
            p++;
            path.push(level(0));
            expectOp(']');
          } else break;
        }
        return { k: 'ref', name: t.s.slice(1), path };
      }
      case 'op':
        if (t.s === '(') {
          const e = level(0);
          expectOp(')');
          return e;
        }
        throw new ExprError(`unexpected '${t.s}'`, t.at);
      default:
        throw new ExprError('expression ends too early', t.at);
    }
  };
  const e = level(0);
  const rest = peek();
  if (rest.t !== 'end') throw new ExprError(`unexpected '${rest.s}'`, rest.at);
  return e;
}

/** Names an expression uses: constants and bound names (for load-time checks). */
export function exprNames(e: Expr, out: { consts: string[]; refs: string[] } = { consts: [], refs: [] }) {
  switch (e.k) {
    case 'const':
      out.consts.push(e.name);
      break;
    case 'ref':
      out.refs.push(e.name);
      for (const p of e.path) if (typeof p !== 'string') exprNames(p, out);
      break;
    case 'un':
      exprNames(e.a, out);
      break;
    case 'bin':
      exprNames(e.a, out);
      exprNames(e.b, out);
      break;
  }
  return out;
}

export interface EvalEnv {
  constant(name: string): bigint | undefined;
  lookup(name: string): unknown;
}

/** Thrown when a value cannot be computed (a bad reference at run time). */
export class FlowEvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowEvalError';
  }
}

function toBig(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'boolean') return v ? 1n : 0n;
  throw new FlowEvalError(`${what} is not an integer (${v === undefined ? 'undefined' : typeof v})`);
}

/** Evaluate to a raw value: integers as bigint; a bare reference may also be a struct or bytes. */
export function evalRaw(e: Expr, env: EvalEnv): unknown {
  if (e.k === 'ref') {
    let v = env.lookup(e.name);
    if (v === undefined) throw new FlowEvalError(`$${e.name} is not bound`);
    let where = `$${e.name}`;
    for (const part of e.path) {
      const key = typeof part === 'string' ? part : Number(evalBig(part, env));
      if (v === null || typeof v !== 'object')
        throw new FlowEvalError(`${where} has no field ${String(key)}`);
      v = (v as Record<string | number, unknown>)[key];
      where += typeof part === 'string' ? `.${part}` : `[${key}]`;
      if (v === undefined) throw new FlowEvalError(`${where} does not exist`);
    }
    return v;
  }
  return evalBig(e, env);
}

export function evalBig(e: Expr, env: EvalEnv): bigint {
  switch (e.k) {
    case 'num':
      return e.v;
    case 'const': {
      const c = env.constant(e.name);
      if (c === undefined) throw new FlowEvalError(`unknown constant ${e.name}`);
      return c;
    }
    case 'ref':
      return toBig(evalRaw(e, env), `$${e.name}`);
    case 'un': {
      const a = evalBig(e.a, env);
      if (e.op === '-') return -a;
      if (e.op === '+') return a;
      if (e.op === '~') return BigInt.asUintN(64, ~a);
      return a === 0n ? 1n : 0n;
    }
    case 'bin': {
      if (e.op === '&&') return evalBig(e.a, env) !== 0n && evalBig(e.b, env) !== 0n ? 1n : 0n;
      if (e.op === '||') return evalBig(e.a, env) !== 0n || evalBig(e.b, env) !== 0n ? 1n : 0n;
      const a = evalBig(e.a, env);
      const b = evalBig(e.b, env);
      switch (e.op) {
        case '+':
          return a + b;
        case '-':
          return a - b;
        case '*':
          return a * b;
        case '/':
        case '%':
          if (b === 0n) throw new FlowEvalError('division by zero');
          return e.op === '/' ? a / b : a % b;
        case '<<':
          return BigInt.asUintN(64, a << b);
        case '>>':
          return a >> b;
        case '&':
          return a & b;
        case '|':
          return a | b;
        case '^':
          return a ^ b;
        case '==':
          return a === b ? 1n : 0n;
        case '!=':
          return a !== b ? 1n : 0n;
        case '<':
          return a < b ? 1n : 0n;
        case '<=':
          return a <= b ? 1n : 0n;
        case '>':
          return a > b ? 1n : 0n;
        default:
          return a >= b ? 1n : 0n;
      }
    }
  }
}

/** What the model takes: a number when exact, else a bigint. */
export function toArg(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
