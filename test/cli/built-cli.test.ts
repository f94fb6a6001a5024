/**
 * The built `gmemlab measure snp|tdx` (scripts/bundle-cli.mjs into a temporary directory): the CommonJS
 * bin runs the self-contained tool bundles through their V8 code caches, and prints the same reference
 * digests whatever becomes of a cache (stale, refused by V8, missing): a cache only saves compile time.
 * Expected digests: sev-snp-measure's run S2 and the TDX tool's MRTD of the same image (measurement.md
 * §3 and §7, as in test/measure).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleCli, WARM_UP_IMAGE } from '../../scripts/bundle-cli.mjs';

const S2 = '32ac9d7a17d28f7cd4404a4516d2f00519668c40ada2062351c36767e908eb3f090d66c33ab10f80150e00a4385b6d0f';
const MRTD_BW_SINGLE =
  '4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47';
const SNP_ARGS = ['measure', 'snp', '--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-v4', '--ovmf'];

let out = '';
const run = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(out, 'gmemlab.js'), ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at .+:\d+:\d+/);
const snp = () => run(...SNP_ARGS, WARM_UP_IMAGE);
const cacheFile = () => join(out, 'measure-snp.code-cache');
/** What a fresh node (with `flags`) makes of measure-snp's cache: src/cli/tool-loader.ts's verdict. */
const cacheState = (...flags: string[]) => {
  const code = 'console.log(require(process.argv[1]).codeCacheState(process.argv[2]))';
  const r = spawnSync(
    process.execPath,
    [...flags, '-e', code, join(out, 'cc.cjs'), join(out, 'measure-snp.js')],
    {
      encoding: 'utf8',
    },
  );
  return r.stdout.trim();
};

describe('built gmemlab measure (scripts/bundle-cli.mjs)', () => {
  let caches: Awaited<ReturnType<typeof bundleCli>>['caches'] = {};
  let pristine: Buffer;
  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'gmemlab-built-'));
    ({ caches } = await bundleCli(out));
    await build({
      entryPoints: [join(import.meta.dirname, '../../scripts/code-cache.ts')],
      outfile: join(out, 'cc.cjs'),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      logLevel: 'warning',
    });
    pristine = readFileSync(cacheFile());
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));
  const restore = () => writeFileSync(cacheFile(), pristine);

  it('the build writes both code caches after a run on the fixture, accepted by a fresh node', () => {
    expect(existsSync(WARM_UP_IMAGE)).toBe(true);
    for (const t of ['snp', 'tdx'] as const) {
      expect(caches[t]?.state).toBe('accepted');
      expect(caches[t]?.warmUp).toContain(WARM_UP_IMAGE);
      expect(caches[t]?.bytes).toBeGreaterThan(64 * 1024);
    }
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
    expect(cacheState()).toBe('accepted');
  });

  it('measure snp prints sev-snp-measure S2; measure tdx prints the reference MRTD', () => {
    expect(snp()).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    expect(run('measure', 'tdx', '--firmware', WARM_UP_IMAGE)).toEqual({
      code: 0,
      out: `${MRTD_BW_SINGLE}\n`,
      err: '',
    });
  });

  it('a damaged cache (one flipped byte of V8 data) is not used: same digest', () => {
    const b = Buffer.from(pristine);
    b[b.length - 100] ^= 0xff;
    writeFileSync(cacheFile(), b);
    expect(cacheState()).toBe('stale');
    expect(snp()).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    restore();
  });

  it('a cache made by another Node version, or for another bundle text, is not used: same digest', () => {
    const text = pristine.toString('latin1');
    writeFileSync(cacheFile(), Buffer.from(text.replace(/^(\S+) v\d+\.\d+\.\d+ /, '$1 v0.0.0 '), 'latin1'));
    expect(cacheState()).toBe('stale');
    expect(snp()).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    const nl = pristine.indexOf(10);
    const header = pristine.toString('latin1', 0, nl).split(' ');
    header[4] = '0'.repeat(64);
    writeFileSync(
      cacheFile(),
      Buffer.concat([Buffer.from(header.join(' '), 'latin1'), pristine.subarray(nl)]),
    );
    expect(cacheState()).toBe('stale');
    expect(snp()).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    restore();
  });

  it('a cache V8 refuses (other V8 flags), or no cache at all: same digest', () => {
    expect(cacheState('--no-opt')).toBe('rejected');
    const r = spawnSync(process.execPath, ['--no-opt', join(out, 'gmemlab.js'), ...SNP_ARGS, WARM_UP_IMAGE], {
      encoding: 'utf8',
    });
    expect({ code: r.status, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    rmSync(cacheFile());
    expect(cacheState()).toBe('absent');
    expect(snp()).toEqual({ code: 0, out: `${S2}\n`, err: '' });
    restore();
  });

  it('bad usage and a bad image: one line, exit 2 / 1, as the source CLI', () => {
    // argparse's wording and order (sev-snp-measure): the bad value is reported before the missing --mode.
    const usage = run('measure', 'snp', '--vcpus', 'x');
    expect(usage).toEqual({
      code: 2,
      out: '',
      err: "gmemlab measure snp: error: argument --vcpus: invalid int value: 'x'\n",
    });
    const bad = run('measure', 'tdx', '--firmware', join(out, 'package.json'));
    expect(bad.code).toBe(1);
    expect(bad.err.split('\n')).toHaveLength(2);
    expect(bad.err).toMatch(/^gmemlab measure tdx: /);
    noStack(bad.err);
  });

  it('measure snp --dump-vmsa writes vmsa0.bin, vmsa1.bin in the working directory: the bytes sev-snp-measure 8f2b337e writes', () => {
    // Expected: SHA-256 of the files upstream's cli.py writes for these options on the same image
    // (guest.py snp_calc_launch_digest, dump_vmsa), and its printed digest.
    const dir = mkdtempSync(join(tmpdir(), 'gmemlab-vmsa-'));
    const args = ['measure', 'snp', '--mode', 'snp', '--vcpus', '2', '--vcpu-type', 'EPYC-v4'];
    const r = spawnSync(
      process.execPath,
      [join(out, 'gmemlab.js'), ...args, '--guest-features', '0x21', '--dump-vmsa', '--ovmf', WARM_UP_IMAGE],
      { encoding: 'utf8', cwd: dir },
    );
    expect({ code: r.status, out: r.stdout, err: r.stderr }).toEqual({
      code: 0,
      out: '735869e96909943dd1bd046cf281aec588ae12c2c66ee6844e40e93d423722dbe535fd7dd7cb9a5f45a7adf8d6346c89\n',
      err: '',
    });
    expect(readdirSync(dir).sort()).toEqual(['vmsa0.bin', 'vmsa1.bin']);
    const sha = (f: string) =>
      createHash('sha256')
        .update(readFileSync(join(dir, f)))
        .digest('hex');
    expect(sha('vmsa0.bin')).toBe('b2588f97abfa82b893444537c17d4ae97a78eb0a5f78a4d844055d8d15be091a');
    expect(sha('vmsa1.bin')).toBe('9fe4cc44ca9c23819e83f4e2660f721344762076bb3b2c29ce029516aabd98b5');
    rmSync(dir, { recursive: true, force: true });
  });

  it('--help prints the usage on stdout, exit 0', () => {
    const r = run('measure', 'tdx', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: gmemlab measure tdx \[options\]\n/);
    expect(r.err).toBe('');
  });

  it('a closed stdout ends the output quietly (exit 0, nothing on stderr)', () => {
    const cmd = `"${process.execPath}" "${join(out, 'gmemlab.js')}" measure tdx --help | true; echo "rc=\${PIPESTATUS[0]}"`;
    const sh = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
    expect(sh.stdout).toBe('rc=0\n');
    expect(sh.stderr).toBe('');
  });

  it('without a tool bundle: "not available in this build", exit 2', () => {
    const tool = join(out, 'measure-tdx.js');
    copyFileSync(tool, `${tool}.bak`);
    rmSync(tool);
    try {
      expect(run('measure', 'tdx', '--firmware', WARM_UP_IMAGE)).toEqual({
        code: 2,
        out: '',
        err: 'gmemlab measure tdx: not available in this build\n',
      });
    } finally {
      copyFileSync(`${tool}.bak`, tool);
    }
  });
});
