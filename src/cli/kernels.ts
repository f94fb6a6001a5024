/** `gmemlab kernels`: the kernel profiles with their one-line description. */
import { allProfiles } from '../kernel/profiles/index.js';

export function kernelsCommand(opts: { json?: boolean }): number {
  const ps = allProfiles();
  if (opts.json) {
    // Plain strings: JSON.stringify is report/json's toJsonText here, without loading the flow code.
    const rows = ps.map((p) => ({ name: p.name, base: p.base, description: p.description }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  const w = Math.max(...ps.map((p) => p.name.length));
  for (const p of ps) process.stdout.write(`${p.name.padEnd(w)}  ${p.description}\n`);
  return 0;
}
