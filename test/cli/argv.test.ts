/**
 * The measurement tools' option parser (src/cli/argv.ts): the tools no longer load commander, so
 * the behaviours users relied on are checked here: `--name value` and `--name=value`, choices,
 * defaults, required options, unknown options and stray arguments as one-line errors, -h/--help.
 */
import { describe, expect, it } from 'vitest';
import { ArgvError, helpText, type OptionSpec, parseArgv } from '../../src/cli/argv.js';

const SPECS: readonly OptionSpec[] = [
  { name: 'firmware', value: 'file', description: 'image', required: true },
  { name: 'order', value: 'order', description: 'order', choices: ['single', 'two-pass'], default: 'single' },
  { name: 'verbose', description: 'a flag' },
];

const error = (argv: string[]): string => {
  try {
    parseArgv(argv, SPECS);
  } catch (e) {
    expect(e).toBeInstanceOf(ArgvError);
    return (e as Error).message;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
};

describe('measure tools: option parsing without commander', () => {
  it('separate and = values, defaults, flags; the last occurrence wins', () => {
    const r = parseArgv(['--firmware', 'a.fd', '--verbose', '--firmware=b.fd'], SPECS);
    expect(r.help).toBe(false);
    expect(Object.fromEntries(r.values)).toEqual({ firmware: 'b.fd', order: 'single', verbose: 'true' });
    // A value is the next argument whatever it looks like (commander's rule for <value> options).
    expect(parseArgv(['--firmware', '--order'], SPECS).values.get('firmware')).toBe('--order');
  });

  it('choices, missing values, required, unknown options and stray arguments are one-line errors', () => {
    expect(error(['--firmware', 'x', '--order', 'three-pass'])).toBe(
      "error: option '--order <order>' argument 'three-pass' is invalid. Allowed choices are single, two-pass.",
    );
    expect(error(['--firmware'])).toBe("error: option '--firmware <file>' argument missing");
    expect(error([])).toBe("error: required option '--firmware <file>' not specified");
    expect(error(['--firmware', 'x', '--nope'])).toBe("error: unknown option '--nope'");
    expect(error(['--firmware', 'x', 'extra'])).toMatch(/too many arguments/);
    expect(error(['--firmware', 'x', '--verbose=1'])).toMatch(/takes no argument/);
    for (const a of [['--nope'], ['--firmware']]) expect(error(a).split('\n')).toHaveLength(1);
  });

  it('-h / --help stops parsing (even before a missing required option) and the text lists every option', () => {
    expect(parseArgv(['-h'], SPECS).help).toBe(true);
    expect(parseArgv(['--help'], SPECS).help).toBe(true); // --firmware is required, yet no error
    expect(parseArgv(['--firmware', 'x', '--help', '--nope'], SPECS).help).toBe(true);
    const text = helpText('gmemlab measure tdx', 'what it does', SPECS);
    expect(text).toMatch(/^Usage: gmemlab measure tdx \[options\]\n/);
    for (const s of ['--firmware <file>', '--order <order>', '--verbose', '-h, --help', 'default: "single"'])
      expect(text).toContain(s);
  });
});
