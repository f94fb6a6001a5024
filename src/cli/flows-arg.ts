/** Resolving flow arguments: files, or directories of *.yaml / *.yml (sorted, not recursive). */
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';

/** The corpus shipped with the package: <package>/flows (src/cli and dist/cli are two levels down). */
export function corpusDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../flows');
}

export function flowFiles(args: readonly string[]): string[] {
  const list = args.length ? args : [corpusDir()];
  const out: string[] = [];
  for (const a of list) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(a);
    } catch {
      throw new UsageError(`${a}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const files = readdirSync(a)
        .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
        .sort();
      if (files.length === 0) throw new UsageError(`${a}: no flow files (*.yaml) in this directory`);
      out.push(...files.map((f) => join(a, f)));
    } else out.push(a);
  }
  return out;
}
