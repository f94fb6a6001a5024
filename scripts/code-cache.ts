/**
 * Build step (run by scripts/bundle.mjs in a fresh `node`, bundled as CommonJS: `require` is defined): write the V8 code
 * cache of a measurement tool bundle after one representative run, so the functions that run compiled
 * lazily are in the cache, not only the top level; then check that a fresh process accepts it.
 */
import { writeFileSync } from 'node:fs';
import { type CodeCacheState, codeCacheHeader, codeCachePath, loadTool } from '../src/cli/tool-loader.js';

/** Run the tool on `argv` (output discarded, exit code must be 0), then write its cache. Returns bytes. */
export async function writeCodeCache(bundle: string, argv: string[]): Promise<number> {
  const t = loadTool(bundle, require, false);
  const errors: string[] = [];
  const code = await t.main(argv, { out: () => {}, err: (text) => void errors.push(text) });
  if (code !== 0)
    throw new Error(`${bundle} ${argv.join(' ')}: exit ${String(code)}: ${errors.join('').trim()}`);
  const data = t.script.createCachedData();
  writeFileSync(
    codeCachePath(bundle),
    Buffer.concat([Buffer.from(codeCacheHeader(t.source, data), 'latin1'), data]),
  );
  return data.length;
}

/** What a fresh process makes of the bundle's cache ('accepted' when it is used). */
export function codeCacheState(bundle: string): CodeCacheState {
  return loadTool(bundle, require).cache;
}
