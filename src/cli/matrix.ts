/** `gmemlab matrix [FLOWS...]`: flows x kernel profiles against the documented outcomes. */
import { writeFileSync } from 'node:fs';
import '../kernel/arch/register.js';
import { FlowLoadError, loadFlow, type Problem } from '../flow/loader.js';
import { runMatrix } from '../flow/matrix.js';
import type { Flow } from '../flow/types.js';
import { matrixJson, toJsonText } from '../report/json.js';
import { matrixJUnit } from '../report/junit.js';
import { renderMatrix } from '../report/text.js';
import { flowFiles } from './flows-arg.js';
import type { MatrixCliOptions } from './gmemlab.js';
import { useColor } from './run.js';

export function matrixCommand(args: string[], opts: MatrixCliOptions): number {
  const files = flowFiles(args);
  const flows: Flow[] = [];
  const problems: Problem[] = [];
  for (const f of files) {
    try {
      flows.push(loadFlow(f));
    } catch (e) {
      if (e instanceof FlowLoadError) problems.push(...e.problems);
      else throw e;
    }
  }
  if (problems.length) throw new FlowLoadError(problems);
  const kernels = opts.kernels
    ?.split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const m = runMatrix(flows, { kernels });
  if (opts.junit) writeFileSync(opts.junit, matrixJUnit(m));
  if (opts.json) process.stdout.write(toJsonText(matrixJson(m)));
  else process.stdout.write(renderMatrix(m, { color: useColor(), verbose: opts.verbose }));
  return m.agrees ? 0 : 1;
}
