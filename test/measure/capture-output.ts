/** What a CLI main() writes, for the `gmemlab measure` tests: stdout and stderr captured by spies. */
import { vi } from 'vitest';

export interface CapturedOutput {
  out: string;
  err: string;
}

/** Spy on process.stdout/stderr.write from now until vi.restoreAllMocks(); returns the text written. */
export function captureOutput(): CapturedOutput {
  const io: CapturedOutput = { out: '', err: '' };
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    io.out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    io.err += String(s);
    return true;
  });
  return io;
}
