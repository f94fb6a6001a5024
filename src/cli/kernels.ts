/** `gmemlab kernels`: the kernel profiles with their one-line description. */
import { allProfiles } from '../kernel/profiles/index.js';
import { toJsonText } from '../report/json.js';

export function kernelsCommand(opts: { json?: boolean }): number {
  const ps = allProfiles();
  if (opts.json) {
    process.stdout.write(
      toJsonText(ps.map((p) => ({ name: p.name, base: p.base, description: p.description }))),
    );
    return 0;
  }
  const w = Math.max(...ps.map((p) => p.name.length));
  for (const p of ps) process.stdout.write(`${p.name.padEnd(w)}  ${p.description}\n`);
  return 0;
}
