// Bundles the CLI so `gmemlab` starts fast (scripts/bundle-cli.mjs: dist/cli holds the CommonJS bin,
// the self-contained measurement tools with their V8 code caches, and the commander CLI as ES modules),
// then writes the flow JSON Schema. `npm run build` empties dist/ first; dist/cli is emptied here too.
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { bundleCli } from './bundle-cli.mjs';

const { cli, bin, measure, caches, selfContained } = await bundleCli();

// `node scripts/bundle.mjs --metafile FILE`: esbuild's metafiles, for esbuild's analyzer.
const metaAt = process.argv.indexOf('--metafile');
if (metaAt >= 0 && process.argv[metaAt + 1]) {
  writeFileSync(
    process.argv[metaAt + 1],
    JSON.stringify({ cli: cli.metafile, bin: bin.metafile, measure: measure?.metafile ?? null }),
  );
}
const outputs = { ...bin.metafile.outputs, ...measure?.metafile.outputs };
for (const file of selfContained) {
  console.log(
    `${relative(process.cwd(), file)}: ${(outputs[file].bytes / 1024).toFixed(0)} KiB, self-contained`,
  );
}
for (const [tool, c] of Object.entries(caches)) {
  const run = c.warmUp.includes('--help') ? '--help' : '<fixture>';
  console.log(
    `measure-${tool}.code-cache: ${(c.bytes / 1024).toFixed(0)} KiB after \`measure ${tool} ${run}\`, ${c.state}`,
  );
}

// dist/flow.schema.json from the zod schema (package export "./flow.schema.json").
await import('./flow-schema.mjs');
