// Writes the flow JSON Schema (generated from the zod schema in src/flow/schema.ts, compiled to
// dist/ by tsc) to dist/flow.schema.json; with --check, fails if schema/flow.schema.json (the
// committed copy editors point at) differs; with --write, updates that copy.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { flowJsonSchema } = await import(join(root, 'dist/flow/schema.js'));
const text = `${JSON.stringify(flowJsonSchema(), null, 2)}\n`;
mkdirSync(join(root, 'dist'), { recursive: true });
writeFileSync(join(root, 'dist/flow.schema.json'), text);
const committed = join(root, 'schema/flow.schema.json');
if (process.argv.includes('--write')) {
  mkdirSync(dirname(committed), { recursive: true });
  writeFileSync(committed, text);
} else if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(committed, 'utf8');
  } catch {}
  if (old !== text) {
    console.error('schema/flow.schema.json is out of date: run `node scripts/flow-schema.mjs --write`');
    process.exit(1);
  }
}
