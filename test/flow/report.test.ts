/** JSON and JUnit renderings of a run and of a matrix: well-formed, complete, and marking what differs. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/kernel/arch/register.js';
import { loadFlow } from '../../src/flow/loader.js';
import { runMatrix } from '../../src/flow/matrix.js';
import { runFlow } from '../../src/flow/runner.js';
import { matrixJson, runJson, toJsonText } from '../../src/report/json.js';
import { matrixJUnit, runJUnit, xmlEscape } from '../../src/report/junit.js';
import { renderMatrix, renderRun } from '../../src/report/text.js';

const wip = loadFlow(join(import.meta.dirname, '../../flows/qemu-tdx-wip-2024.yaml'));

describe('reports', () => {
  it('run JSON: steps, the failure with its explanation, the documented outcome', () => {
    const run = runFlow(wip, { kernel: 'tdx-dev-2024-07+eexist' });
    const j = JSON.parse(toJsonText(runJson(run, wip)));
    expect(j.passed).toBe(false);
    expect(j.observed).toMatchObject({ result: 'EEXIST', at: 'init-mem-bfv' });
    expect(j.documented).toMatchObject({ result: 'EEXIST', at: 'init-mem-bfv' });
    expect(j.agrees).toBe(true);
    const last = j.steps.at(-1);
    expect(last.outcome).toMatchObject({ kind: 'errno', code: 'EEXIST', errno: 17 });
    expect(last.location).toMatch(/^.*qemu-tdx-wip-2024\.yaml:\d+:5$/);
    expect(last.explanation).toContain("'pre-fault-bfv'");
  });

  it('matrix JSON and JUnit: a cell whose documented outcome differs is a JUnit failure', () => {
    // The same flow claimed to pass everywhere: the outcomes map is replaced to make cells differ.
    const liar = {
      ...wip,
      outcomes: new Map([['others', { result: 'ok' as const, loc: wip.steps[0]!.loc }]]),
    };
    const m = runMatrix([liar], { kernels: ['tdx-dev-2024-07', 'tdx-dev-2024-07+eexist'] });
    expect(m.agrees).toBe(false);
    const j = JSON.parse(toJsonText(matrixJson(m)));
    expect(j.cells.map((c: { agrees: boolean }) => c.agrees)).toEqual([true, false]);
    const xml = matrixJUnit(m);
    expect(xml).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="gmemlab matrix" tests="2" failures="1"/,
    );
    expect(xml.match(/<testcase /g)?.length).toBe(2);
    expect(xml.match(/<failure /g)?.length).toBe(1);
    expect(xml).toContain('observed EEXIST at init-mem-bfv, documented ok');
    expect(xml).toContain('&apos;pre-fault-bfv&apos;');
    expect(renderMatrix(m)).toContain('EEXIST@');
    expect(renderMatrix(m)).toContain('1 of 2 cells differ');
  });

  it('run JUnit: one case per step, the failing one carries the explanation', () => {
    const run = runFlow(wip, { kernel: 'v6.16' });
    const xml = runJUnit(run);
    expect(xml.match(/<testcase /g)?.length).toBe(run.steps.length);
    expect(xml.match(/<failure /g)?.length).toBe(1);
    expect(xml).toContain('EOPNOTSUPP');
    expect(renderRun(run, wip)).toContain('FAIL: step');
  });

  it('xmlEscape escapes markup and drops characters XML forbids', () => {
    expect(xmlEscape(`<a b="c">&'\u0001`)).toBe('&lt;a b=&quot;c&quot;&gt;&amp;&apos;');
  });
});
