/**
 * A small long-option parser for the measurement tools (`gmemlab measure snp|tdx`). They must start
 * fast and load only the kernel and measure modules, so they do not use commander (about 25 ms to
 * load). Accepts `--name value`, `--name=value` and `-h`/`--help`; the messages follow commander's
 * wording so users see the same errors as the other subcommands. Every error is an ArgvError (one
 * line, exit 2 for the caller).
 */

/**
 * Where a measurement tool writes. The default goes through process.stdout/stderr; the built `gmemlab`
 * (src/cli/start.cts) passes synchronous fd writes, so a measurement never creates the stdio streams.
 */
export interface ToolIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: ToolIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** One option: `--name <value>`, or a flag when `value` is absent. */
export interface OptionSpec {
  /** Long name without the dashes, e.g. 'vcpu-type'. */
  readonly name: string;
  /** Placeholder shown in help and errors, e.g. 'type' for `--vcpu-type <type>`. */
  readonly value?: string;
  readonly description: string;
  readonly choices?: readonly string[];
  readonly default?: string;
  readonly required?: boolean;
}

/** Bad usage: the message is one line, commander-style ("error: ..."). */
export class ArgvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgvError';
  }
}

export interface ParsedArgv {
  /** Option values by long name (defaults applied); flags are 'true'. */
  readonly values: ReadonlyMap<string, string>;
  /** -h / --help was given: the caller prints helpText() and exits 0. */
  readonly help: boolean;
}

function flagText(o: OptionSpec): string {
  return o.value === undefined ? `--${o.name}` : `--${o.name} <${o.value}>`;
}

/** Parse `argv` (the arguments after the subcommand) against `specs`. Throws ArgvError. */
export function parseArgv(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgv {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return { values, help: true };
    if (!arg.startsWith('--') || arg === '--') {
      throw new ArgvError(`error: too many arguments. Expected 0 arguments but got '${arg}'.`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new ArgvError(`error: unknown option '${eq < 0 ? arg : arg.slice(0, eq)}'`);
    let value: string;
    if (spec.value === undefined) {
      if (eq >= 0) throw new ArgvError(`error: option '${flagText(spec)}' takes no argument`);
      value = 'true';
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      // As commander: a required value is the next argument, whatever it looks like.
      if (next === undefined) throw new ArgvError(`error: option '${flagText(spec)}' argument missing`);
      value = next;
      i++;
    }
    if (spec.choices && !spec.choices.includes(value)) {
      throw new ArgvError(
        `error: option '${flagText(spec)}' argument '${value}' is invalid. Allowed choices are ${spec.choices.join(', ')}.`,
      );
    }
    values.set(name, value);
  }
  for (const s of specs) {
    if (!values.has(s.name) && s.default !== undefined) values.set(s.name, s.default);
    if (s.required && !values.has(s.name))
      throw new ArgvError(`error: required option '${flagText(s)}' not specified`);
  }
  return { values, help: false };
}

/** Usage text, laid out like commander's. */
export function helpText(usage: string, description: string, specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const extra: string[] = [];
    if (s.choices) extra.push(`choices: ${s.choices.map((c) => `"${c}"`).join(', ')}`);
    if (s.default !== undefined) extra.push(`default: "${s.default}"`);
    return [flagText(s), extra.length ? `${s.description} (${extra.join(', ')})` : s.description] as const;
  });
  rows.push(['-h, --help', 'display help for command']);
  const w = Math.max(...rows.map(([f]) => f.length));
  const lines = rows.map(([f, d]) => `  ${f.padEnd(w)}  ${d}`);
  return `Usage: ${usage} [options]\n\n${description}\n\nOptions:\n${lines.join('\n')}\n`;
}
