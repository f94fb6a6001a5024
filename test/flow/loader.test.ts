/**
 * The flow loader's errors: every file in fixtures/broken/ is a malformed flow; the .expected file
 * next to it holds the exact lines (file:line:column: what was expected), written by hand from the
 * fixture's text. No stack trace, one line per problem.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseExpr } from '../../src/flow/expr.js';
import { FlowLoadError, formatProblem, loadFlow, parseFlow } from '../../src/flow/loader.js';

const dir = join(import.meta.dirname, 'fixtures/broken');
const broken = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

describe('loader: malformed flows give one line per problem with file:line:column', () => {
  it('has broken fixtures', () => {
    expect(broken.length).toBeGreaterThanOrEqual(6);
  });
  for (const f of broken) {
    it(f, () => {
      const text = readFileSync(join(dir, f), 'utf8');
      const want = readFileSync(join(dir, f.replace(/\.yaml$/, '.expected')), 'utf8')
        .trim()
        .split('\n');
      let err: unknown;
      try {
        parseFlow(text, f);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FlowLoadError);
      const lines = (err as FlowLoadError).problems.map(formatProblem);
      expect(lines).toEqual(want);
      for (const l of lines) expect(l).not.toMatch(/\n|at .*\.ts:\d+/);
    });
  }

  it('a missing file is one problem, not an exception from fs', () => {
    expect(() => loadFlow('/nonexistent/flow.yaml')).toThrow(FlowLoadError);
    try {
      loadFlow('/nonexistent/flow.yaml');
    } catch (e) {
      expect((e as FlowLoadError).problems.map(formatProblem)).toEqual([
        '/nonexistent/flow.yaml:1:1: cannot read the flow file (ENOENT)',
      ]);
    }
  });

  it('the corpus loads', () => {
    const flows = readdirSync(join(import.meta.dirname, '../../flows')).filter((f) => f.endsWith('.yaml'));
    expect(flows.length).toBeGreaterThanOrEqual(9);
    for (const f of flows)
      expect(loadFlow(join(import.meta.dirname, '../../flows', f)).name).toBe(f.replace(/\.yaml$/, ''));
  });
});

describe('expressions', () => {
  it('parse C precedence: 1 << 12 | 3 is (1 << 12) | 3', () => {
    const e = parseExpr('1 << 12 | 3');
    expect(e).toEqual({
      k: 'bin',
      op: '|',
      a: { k: 'bin', op: '<<', a: { k: 'num', v: 1n }, b: { k: 'num', v: 12n } },
      b: { k: 'num', v: 3n },
    });
  });
  it('references with fields and indexes', () => {
    expect(parseExpr('$exit.hypercall.args[0]')).toEqual({
      k: 'ref',
      name: 'exit',
      path: ['hypercall', 'args', { k: 'num', v: 0n }],
    });
  });
});
