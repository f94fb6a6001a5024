/**
 * bench/ab.mjs: runs the working tree's model and a revision's at the same time on the conversion
 * trace (conversion-trace.ts --model-only), or interleaved in one process (bench/lib/interleave.ts),
 * and prints per-pair ratios; bad arguments are one line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ab = join(root, 'bench', 'ab.mjs');

function run(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [ab, ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const worktrees = (): string => execFileSync('git', ['worktree', 'list'], { cwd: root, encoding: 'utf8' });

describe('bench/ab.mjs', () => {
  it('without a revision: the usage line, exit 2', () => {
    const r = run('--pairs', '2');
    expect(r.status).toBe(2);
    expect(r.err.trim()).toBe(
      'usage: node bench/ab.mjs <git-rev> [--pairs N] [--interleaved] [-- conversion-trace arguments]',
    );
  });

  it('an unknown revision: one line naming it, exit 2, no worktree left', () => {
    const before = worktrees();
    const r = run('no-such-rev-xyz');
    expect(r.status).toBe(2);
    expect(r.err.trim()).toBe("ab: 'no-such-rev-xyz' is not a revision of this repository");
    expect(worktrees()).toBe(before);
  });

  it('one pair of a small trace against HEAD: both rates, their ratio, the medians; the worktree is removed', () => {
    const before = worktrees();
    const r = run('HEAD', '--pairs', '1', '--', '512');
    expect(r.status).toBe(0);
    const pair = /pair 1: working tree ([\d.]+) us\/page, HEAD ([\d.]+) us\/page, ratio ([\d.]+)/.exec(r.out);
    expect(pair).not.toBeNull();
    const [a, b, ratio] = pair!.slice(1).map(Number) as [number, number, number];
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(ratio).toBeCloseTo(a / b, 2);
    expect(r.out).toMatch(/median ratio [\d.]+ \(working tree faster in [01] of 1;/);
    expect(worktrees()).toBe(before);
  }, 60_000);

  it('--interleaved: one repetition of a small trace against HEAD, both builds in one process; the worktree is removed', () => {
    const before = worktrees();
    const r = run('HEAD', '--interleaved', '--pairs', '1', '--', '1024');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/1 repetitions interleaved in one process/);
    const rep = /repetition 1: working tree ([\d.]+) us\/page, HEAD ([\d.]+) us\/page, ratio ([\d.]+)/.exec(
      r.out,
    );
    expect(rep).not.toBeNull();
    const [a, b, ratio] = rep!.slice(1).map(Number) as [number, number, number];
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(ratio).toBeCloseTo(a / b, 2);
    expect(worktrees()).toBe(before);
  }, 60_000);
});
