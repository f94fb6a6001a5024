/**
 * FdTable (src/kernel/file.ts): the process's fds, lowest free first (get_unused_fd_flags), and
 * what a lookup of anything that is not an open fd answers (-EBADF), whatever the JS value.
 */
import { describe, expect, it } from 'vitest';
import { createHost } from '../src/index.js';
import { FdTable, KFile, type Stat } from '../src/kernel/file.js';
import { kernelErrnoOf } from './errno-of.js';

class TestFile extends KFile {
  readonly kind = 'test';
  stat(): Stat {
    return { st_ino: 1, st_size: 0, st_blksize: 4096, st_mode: 0o100600 };
  }
  protected release(): void {}
}

describe('FdTable', () => {
  const host = createHost({ kernel: 'v6.16' });

  it('hands out the lowest free fd from 3, reuses a closed one first, and counts what is open', () => {
    const t = new FdTable();
    const files = [0, 1, 2].map(() => new TestFile(host));
    expect(files.map((f) => t.install(f))).toEqual([3, 4, 5]);
    expect(t.size).toBe(3);
    t.close(4);
    expect(t.size).toBe(2);
    expect(files[1]!.released).toBe(true);
    expect(t.install(new TestFile(host))).toBe(4);
    expect(t.install(new TestFile(host))).toBe(6);
    expect(t.size).toBe(4);
  });

  it('finds an open fd given as a number or a bigint; anything else is EBADF', () => {
    const t = new FdTable();
    const f = new TestFile(host);
    const fd = t.install(f);
    expect(t.lookup(fd)).toBe(f);
    expect(t.lookup(BigInt(fd))).toBe(f);
    expect(t.has(fd)).toBe(true);
    for (const bad of [
      0,
      1,
      2,
      fd + 1,
      -1,
      -fd,
      fd + 0.5,
      2 ** 40,
      Number.NaN,
      Infinity,
      99n,
      -3n,
      '3',
      undefined,
      null,
    ]) {
      expect(kernelErrnoOf(() => t.lookup(bad))).toBe('EBADF');
      expect(t.has(bad)).toBe(false);
    }
    t.close(fd);
    expect(kernelErrnoOf(() => t.lookup(fd))).toBe('EBADF');
    expect(t.has(fd)).toBe(false);
    expect(kernelErrnoOf(() => t.close(fd))).toBe('EBADF');
  });

  it('stops at the soft RLIMIT_NOFILE with EMFILE, dropping the file it could not install', () => {
    const t = new FdTable();
    t.setSoftLimit(5);
    t.install(new TestFile(host));
    t.install(new TestFile(host));
    const f = new TestFile(host);
    expect(kernelErrnoOf(() => t.install(f))).toBe('EMFILE');
    expect(f.released).toBe(true);
    expect(t.size).toBe(2);
  });
});
