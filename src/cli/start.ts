/**
 * The built `gmemlab` (dist/cli/gmemlab.js): a CommonJS file, so `gmemlab measure snp|tdx` starts
 * without Node's ES module loader. scripts/bundle.mjs bundles this file as CommonJS (dist/cli has a
 * package.json of type commonjs); it is not meant to run from source (src/cli/gmemlab.ts is the
 * entry point there, with the same behaviour).
 * - `gmemlab measure snp|tdx ...`: loads the self-contained tool bundle through its V8 code cache
 *   (tool-loader.ts) and writes with synchronous fd writes (the stdio streams are never created).
 * - anything else: imports the commander CLI, dist/cli/gmemlab.mjs (src/cli/gmemlab.ts), which
 *   reads process.argv itself.
 * Exit codes and messages are gmemlab.ts's: one line, 2 for bad input, 70 for an internal error.
 */
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ToolIo } from './argv.js';
import { reportOtherError } from './error-line.js';
import { type LoadedTool, loadTool } from './tool-loader.js';

/** The stream a write falls back to (EAGAIN), with gmemlab.ts's quiet end on a closed pipe. */
function stream(fd: 1 | 2): NodeJS.WriteStream {
  const s = fd === 1 ? process.stdout : process.stderr;
  if (!s.listenerCount('error')) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  return s;
}

/** Write all of `text` to fd 1 or 2 now, as process.stdout/stderr do on files and pipes on Linux. */
function writeFd(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A closed pipe (`gmemlab measure snp ... | head -c0`) ends the output quietly, as gmemlab.ts.
      if (code === 'EPIPE') process.exit(process.exitCode ?? 0);
      if (code !== 'EAGAIN') throw e;
      // A non-blocking descriptor we did not open: the stream queues what is left.
      stream(fd).write(buf.subarray(off));
      return;
    }
  }
}

const fdIo: ToolIo = { out: (text) => writeFd(1, text), err: (text) => writeFd(2, text) };

async function measure(tool: 'snp' | 'tdx', argv: string[]): Promise<number> {
  const file = join(__dirname, `measure-${tool}.js`);
  let t: LoadedTool;
  try {
    t = loadTool(file, require);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && err.path === file) {
      fdIo.err(`gmemlab measure ${tool}: not available in this build\n`);
      return 2;
    }
    throw e;
  }
  const r = await t.main(argv, fdIo);
  return typeof r === 'number' ? r : typeof process.exitCode === 'number' ? process.exitCode : 0;
}

const argv = process.argv.slice(2);
if (argv[0] === 'measure' && (argv[1] === 'snp' || argv[1] === 'tdx')) {
  measure(argv[1], argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.exitCode = reportOtherError(e, fdIo.err);
    },
  );
} else {
  // A computed specifier: the commander CLI is a separate ES module bundle next to this file.
  const cli = pathToFileURL(join(__dirname, 'gmemlab.mjs')).href;
  import(cli).catch((e: unknown) => {
    process.exitCode = reportOtherError(e, (text) => void process.stderr.write(text));
  });
}
