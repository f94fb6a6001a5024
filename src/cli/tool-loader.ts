/**
 * Loads a built measurement tool (dist/cli/measure-snp.js, measure-tdx.js: self-contained CommonJS
 * bundles) through a V8 code cache, so `gmemlab measure snp|tdx` neither parses the bundle nor
 * compiles the functions a measurement runs. Used by the built `gmemlab` (start.ts) and by the build
 * (code-cache.ts writes the cache after a representative run, so lazily compiled functions are in it).
 *
 * The cache file (TOOL.code-cache) is a header line, then V8's data. The header names the Node
 * version, V8 version, architecture, the SHA-256 of the bundle text and the SHA-256 of the data; a
 * cache whose header does not match is not given to V8 at all ('stale'). V8's own check compares only
 * the source length and does not checksum the data in release builds (a cache with flipped bytes is
 * accepted), so a rebuilt bundle of the same length, or a damaged file, must never reach it. V8 may
 * still refuse the data (other V8 flags): 'rejected', and the bundle is compiled as usual, as it is
 * without the file ('absent').
 */
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Script } from 'node:vm';
import type { ToolIo } from './argv.js';

export type CodeCacheState = 'accepted' | 'rejected' | 'stale' | 'absent';

export interface LoadedTool {
  main(argv: string[], io?: ToolIo): unknown;
  readonly script: Script;
  readonly source: string;
  readonly cache: CodeCacheState;
}

const MAGIC = 'gmemlab-code-cache-1';

/** The code cache file of a tool bundle. */
export const codeCachePath = (bundle: string): string => bundle.replace(/\.js$/, '.code-cache');

/** The header line that binds V8's `data` to this runtime and to this exact bundle text. */
export function codeCacheHeader(source: string, data: Uint8Array): string {
  const key = [
    process.version,
    process.versions.v8,
    process.arch,
    hash('sha256', source),
    hash('sha256', data),
  ];
  return `${MAGIC} ${key.join(' ')}\n`;
}

/** The cache's V8 data if its header matches `source` and this runtime; undefined otherwise. */
function cachedDataFor(file: string, source: string): { data?: Buffer; state: CodeCacheState } {
  let raw: Buffer;
  try {
    raw = readFileSync(codeCachePath(file));
  } catch {
    return { state: 'absent' };
  }
  const nl = raw.indexOf(10);
  const data = raw.subarray(nl + 1);
  if (nl < 0 || raw.toString('latin1', 0, nl + 1) !== codeCacheHeader(source, data))
    return { state: 'stale' };
  return { data, state: 'accepted' };
}

/**
 * Compile and run the bundle `file` (the same wrapper as Node's CommonJS loader); its exports must
 * have main(). `load` is the bundle's require (it loads only node: builtins; the caller's own require,
 * not node:module's createRequire, which would load the ES module loader). `useCache: false` compiles
 * without the cache (the build, before writing one). Throws as readFileSync does when the bundle is
 * missing.
 */
export function loadTool(file: string, load: (id: string) => unknown, useCache = true): LoadedTool {
  const source = readFileSync(file, 'utf8');
  const cached = useCache ? cachedDataFor(file, source) : { state: 'absent' as const };
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    cached.data ? { filename: file, cachedData: cached.data } : { filename: file },
  );
  const cache: CodeCacheState = cached.data && script.cachedDataRejected ? 'rejected' : cached.state;
  const mod = { exports: {} as { main?: LoadedTool['main'] } };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(mod.exports, mod.exports, load, mod, file, dirname(file));
  const main = mod.exports.main;
  if (typeof main !== 'function') throw new TypeError(`${file} does not export main()`);
  return { main, script, source, cache };
}
