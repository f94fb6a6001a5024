/** `gmemlab run FLOW --kernel K`: one flow, one profile, every step reported. */
import { writeFileSync } from 'node:fs';
import '../kernel/arch/register.js';
import { loadFlow } from '../flow/loader.js';
import { runFlow } from '../flow/runner.js';
import type { PlatformName } from '../kernel/platform.js';
import { runJson, toJsonText } from '../report/json.js';
import { runJUnit } from '../report/junit.js';
import { renderRun } from '../report/text.js';
import type { RunCliOptions } from './gmemlab.js';

export function runCommand(file: string, opts: RunCliOptions): number {
  const flow = loadFlow(file);
  const run = runFlow(flow, {
    kernel: opts.kernel,
    platform: opts.platform as PlatformName | undefined,
    keepGoing: opts.keepGoing,
  });
  if (opts.junit) writeFileSync(opts.junit, runJUnit(run));
  if (opts.json) process.stdout.write(toJsonText(runJson(run, flow)));
  else process.stdout.write(renderRun(run, flow, { color: useColor(), verbose: opts.verbose }));
  return run.passed ? 0 : 1;
}

export function useColor(): boolean {
  return Boolean(process.stdout.isTTY) && !process.env['NO_COLOR'];
}
