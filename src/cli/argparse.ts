/**
 * A small parser that behaves as Python's argparse for the options `gmemlab measure snp` shares with
 * virtee/sev-snp-measure (sevsnpmeasure/cli.py): `--name value`, `--name=value`, unique prefixes of
 * long names (allow_abbrev), values that may not look like options, -h/--help and --version acted on
 * where they appear, then the required options, then the unrecognized arguments. Messages are
 * argparse's (CPython 3.11 Lib/argparse.py): the caller prints them after "PROG: error: " and exits 2.
 */

/** One option. `type` converts a value or returns undefined ("invalid NAME value: 'x'"). */
export interface ArgSpec {
  /** Option strings, e.g. ['-v', '--verbose']; the last one names the option in messages. */
  readonly flags: readonly string[];
  readonly dest: string;
  /** 'value' takes one argument; 'flag' stores true; 'help' / 'version' end the parse. */
  readonly kind: 'value' | 'flag' | 'help' | 'version';
  readonly metavar?: string;
  readonly help?: string;
  readonly choices?: readonly string[];
  readonly type?: { readonly name: string; parse(s: string): bigint | string | undefined };
  readonly required?: boolean;
  readonly default?: string | bigint;
}

export type ArgValue = string | bigint | boolean;

export class ArgparseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgparseError';
  }
}

export type ParseResult =
  | { readonly kind: 'values'; readonly values: ReadonlyMap<string, ArgValue> }
  | { readonly kind: 'help' | 'version' };

/** Python's repr() of a str, as argparse quotes values: backslashes and control characters escaped. */
export function pyRepr(s: string): string {
  const dq = s.includes("'") && !s.includes('"');
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (ch === "'" && !dq) out += "\\'";
    else out += ch;
  }
  return dq ? `"${out}"` : `'${out}'`;
}

const NEGATIVE_NUMBER = /^-\d+$|^-\d*\.\d+$/;

/** Python int(s): optional sign, decimal digits with single underscores between them, spaces around. */
export function pyInt(s: string): bigint | undefined {
  const t = s.trim();
  if (!/^[+-]?\d+(_\d+)*$/.test(t)) return undefined;
  return BigInt(t.replace(/_/g, ''));
}

/** Python int(s, 0): as pyInt, with 0x / 0o / 0b prefixes; a non-zero decimal may not start with 0. */
export function pyIntAuto(s: string): bigint | undefined {
  const t = s.trim();
  const m =
    /^([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0+(?:_?0)*|[1-9](?:_?\d)*)$/.exec(t);
  if (!m) return undefined;
  const v = BigInt(
    m[2]!
      .replace(/_/g, '')
      .toLowerCase()
      .replace(/^0+(?=\d)/, '') || '0',
  );
  return m[1] === '-' ? -v : v;
}

const nameOf = (s: ArgSpec): string => s.flags.join('/');

/** Parse `argv` against `specs`. Throws ArgparseError with argparse's message. */
export function parseArgs(argv: readonly string[], specs: readonly ArgSpec[]): ParseResult {
  const byFlag = new Map<string, ArgSpec>();
  for (const s of specs) for (const f of s.flags) byFlag.set(f, s);
  const longFlags = specs.flatMap((s) => s.flags.filter((f) => f.startsWith('--')));
  const values = new Map<string, ArgValue>();
  const extras: string[] = [];

  /** argparse _parse_optional(): the option an argument names, 'positional', or 'unknown'. */
  const classify = (arg: string): { spec: ArgSpec; explicit?: string } | 'positional' | 'unknown' => {
    if (!arg.startsWith('-') || arg === '-') return 'positional';
    const exact = byFlag.get(arg);
    if (exact) return { spec: exact };
    const eq = arg.indexOf('=');
    if (eq >= 0) {
      const s = byFlag.get(arg.slice(0, eq));
      if (s) return { spec: s, explicit: arg.slice(eq + 1) };
    }
    if (arg.startsWith('--')) {
      const prefix = eq >= 0 ? arg.slice(0, eq) : arg;
      const hits = longFlags.filter((f) => f.startsWith(prefix));
      if (hits.length > 1) {
        throw new ArgparseError(`ambiguous option: ${arg} could match ${hits.join(', ')}`);
      }
      if (hits.length === 1) {
        const spec = byFlag.get(hits[0]!)!;
        return eq >= 0 ? { spec, explicit: arg.slice(eq + 1) } : { spec };
      }
    }
    if (NEGATIVE_NUMBER.test(arg)) return 'positional';
    if (arg.includes(' ')) return 'positional';
    return 'unknown';
  };

  // As argparse, every argument before '--' is classified first (an ambiguous prefix fails here).
  const end = argv.indexOf('--') < 0 ? argv.length : argv.indexOf('--');
  const classes = argv.slice(0, end).map(classify);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (i >= end) {
      extras.push(...argv.slice(i + 1));
      break;
    }
    const c = classes[i]!;
    if (c === 'positional' || c === 'unknown') {
      extras.push(arg);
      continue;
    }
    const { spec, explicit } = c;
    const label = nameOf(spec);
    if (spec.kind !== 'value') {
      if (explicit !== undefined) {
        throw new ArgparseError(`argument ${label}: ignored explicit argument ${pyRepr(explicit)}`);
      }
      if (spec.kind === 'help' || spec.kind === 'version') return { kind: spec.kind };
      values.set(spec.dest, true);
      continue;
    }
    let raw: string;
    if (explicit !== undefined) {
      raw = explicit;
    } else {
      const next = argv[i + 1];
      if (next === undefined || i + 1 >= end || classes[i + 1] !== 'positional') {
        throw new ArgparseError(`argument ${label}: expected one argument`);
      }
      raw = next;
      i++;
    }
    let value: string | bigint = raw;
    if (spec.type) {
      const v = spec.type.parse(raw);
      if (v === undefined) {
        throw new ArgparseError(`argument ${label}: invalid ${spec.type.name} value: ${pyRepr(raw)}`);
      }
      value = v;
    }
    if (spec.choices && !spec.choices.includes(String(value))) {
      throw new ArgparseError(
        `argument ${label}: invalid choice: ${pyRepr(String(value))} (choose from ${spec.choices.map(pyRepr).join(', ')})`,
      );
    }
    values.set(spec.dest, value);
  }
  const missing = specs.filter((s) => s.required && !values.has(s.dest));
  if (missing.length) {
    throw new ArgparseError(
      `the following arguments are required: ${missing.map((s) => s.flags.join('/')).join(', ')}`,
    );
  }
  if (extras.length) throw new ArgparseError(`unrecognized arguments: ${extras.join(' ')}`);
  for (const s of specs) if (s.default !== undefined && !values.has(s.dest)) values.set(s.dest, s.default);
  return { kind: 'values', values };
}

/** The option list for --help, laid out as argparse prints it. */
export function argparseHelp(usage: string, description: string, specs: readonly ArgSpec[]): string {
  const rows = specs.map((s) => {
    const meta =
      s.kind === 'value' ? ` ${s.choices && !s.metavar ? `{${s.choices.join(',')}}` : s.metavar}` : '';
    return [s.flags.map((f) => `${f}${meta}`).join(', '), s.help ?? ''] as const;
  });
  const lines = rows.map(([f, h]) =>
    f.length <= 20 ? `  ${f.padEnd(22)}${h}` : `  ${f}\n${' '.repeat(24)}${h}`,
  );
  return `usage: ${usage}\n\n${description}\n\noptions:\n${lines.join('\n')}\n`;
}
