/**
 * JUnit XML, for CI dashboards: the matrix as one test suite per flow and one test case per
 * kernel (a failure = the cell differs from its documented outcome); a run as one case per step.
 */
import { type MatrixResult, outcomeLabel } from '../flow/matrix.js';
import { type FlowRun, outcomeText } from '../flow/runner.js';

export function xmlEscape(s: string): string {
  return (
    s
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: XML 1.0 forbids these characters
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '')
  );
}

export function matrixJUnit(m: MatrixResult): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const failures = m.cells.filter((c) => !c.agrees).length;
  out.push(`<testsuites name="gmemlab matrix" tests="${m.cells.length}" failures="${failures}" errors="0">`);
  for (const f of m.flows) {
    const cells = m.cells.filter((c) => c.flow === f.name);
    const fails = cells.filter((c) => !c.agrees).length;
    out.push(
      `  <testsuite name="${xmlEscape(f.name)}" tests="${cells.length}" failures="${fails}" errors="0" file="${xmlEscape(f.file)}">`,
    );
    for (const c of cells) {
      const name = `${c.kernel} (${f.platform}): ${outcomeLabel(c.observed)}`;
      out.push(
        `    <testcase classname="${xmlEscape(f.name)}" name="${xmlEscape(name)}" file="${xmlEscape(f.file)}">`,
      );
      if (!c.agrees) {
        const msg = `observed ${outcomeLabel(c.observed)}, documented ${outcomeLabel(c.documented)}`;
        out.push(
          `      <failure message="${xmlEscape(msg)}" type="outcome-differs">${xmlEscape(c.run.firstUnexpected?.explanation ?? msg)}</failure>`,
        );
      } else if (c.run.firstUnexpected?.explanation) {
        out.push(`      <system-out>${xmlEscape(c.run.firstUnexpected.explanation)}</system-out>`);
      }
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}

export function runJUnit(run: FlowRun): string {
  const fails = run.steps.filter((s) => !s.asExpected).length;
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuite name="${xmlEscape(`${run.flow.name} on ${run.kernel}`)}" tests="${run.steps.length}" failures="${fails}" errors="0" file="${xmlEscape(run.flow.file)}">`,
  );
  for (const s of run.steps) {
    out.push(
      `  <testcase classname="${xmlEscape(run.flow.name)}" name="${xmlEscape(`${s.n} ${s.name ?? s.call}`)}" line="${s.loc.line}">`,
    );
    if (!s.asExpected)
      out.push(
        `    <failure message="${xmlEscape(`expected ${s.expected}, got ${outcomeText(s.outcome)}`)}">${xmlEscape(s.explanation ?? '')}</failure>`,
      );
    out.push('  </testcase>');
  }
  out.push('</testsuite>');
  return `${out.join('\n')}\n`;
}
