/**
 * The SNP ioctls where KVM changed between releases, and error paths the other SNP tests leave out.
 * Expected values come from the kernel source and its history (arch/x86/kvm/svm/sev.c, x86.c,
 * drivers/crypto/ccp/sev-dev.c, include/linux/psp-sev.h):
 * - __sev_guest_init() / sev_guest_init2() / sev_mem_enc_ioctl() at torvalds/linux 0097f9df996f;
 *   6.18 (kvm-x86-svm-6.18): "KVM: SEV: Enforce minimum GHCB version requirement for SEV-SNP guests"
 *   (00f0b959ffb0) and "KVM: SVM: Enable Secure TSC for SNP guests" (SVM_SEV_FEAT_SECURE_TSC, bit 9,
 *   non-SNP VMs refused, DESIRED_TSC_FREQ = default_tsc_khz in SNP_LAUNCH_START);
 * - snp_launch_update(): 6.18 5b66e335ead6 "Reject non-positive effective lengths during
 *   LAUNCH_UPDATE"; before it kvm_gmem_populate(npages = 0) populates nothing and returns 0;
 *   a kvm_gmem_populate() error on the first page (-EFAULT for a closed guest_memfd, -EINTR,
 *   -EHWPOISON) is -EIO at the ioctl with error = 0 (no firmware status);
 * - 6.19 "KVM: SEV: Publish supported SEV-SNP policy bits" (Tom Lendacky, v4 <c596f7529518...>,
 *   KVM_X86_SNP_POLICY_BITS in the v6.19-rc1 uapi headers): snp_supported_policy_bits =
 *   sev_get_snp_policy_bits() & KVM_SNP_POLICY_MASK_VALID; SNP_POLICY_MASK_BASE = bits 0-20;
 *   KVM_SNP_POLICY_MASK_VALID = bits 0-17, 19-25 (not MIGRATE_MA, bit 18);
 * - kvm_x86_dev_get_attr() / kvm_x86_dev_has_attr(): an unknown group or attribute is -ENXIO, the
 *   value goes out with put_user() (-EFAULT), has_attr writes nothing.
 * The modelled firmware is SNP API 1.55 without SNP_FEATURE_INFO on one socket with SMT; the modelled
 * host has a TSC (2.4 GHz) and X86_FEATURE_SNP_SECURE_TSC.
 */
import { describe, expect, it } from 'vitest';
import type { SnpPlatform } from '../../src/kernel/arch/sev/platform.js';
import { snpGuestContext } from '../../src/kernel/arch/sev/report.js';
import { createHost, type Host } from '../../src/kernel/host.js';
import { allProfiles } from '../../src/kernel/profiles/index.js';
import { uapi } from '../../src/uapi/index.js';
import { errnoOf, releaseAtLeast, SNP_KERNELS, snpVm } from './snp-vm.js';

const PAGE = 4096;
const NORMAL = uapi.KVM_SEV_SNP_PAGE_TYPE_NORMAL;
const SECURE_TSC = 0x200n;
const DEBUG_SWAP = 0x20n;
/** Bits 0-17, 19, 20: API minor/major, SMT, RSVD_MBO, DEBUG, SINGLE_SOCKET (psp-sev.h). */
const POLICY_BITS_BASE_KVM = 0x1b_ffffn;

/** KVM_SEV_INIT2 on a fresh VM of `type`; returns the errno name or 'ok'. */
function init2(kernel: string, type: number, data: unknown): string {
  const host = createHost({ kernel, platform: 'snp' });
  const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', type);
  const cmd = { id: uapi.KVM_SEV_INIT2, sev_fd: host.open('/dev/sev'), data, error: 0 };
  return errnoOf(() => host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', cmd));
}

function userBuf(host: Host): number {
  return host.mmap({
    length: PAGE,
    prot: uapi.PROT_READ | uapi.PROT_WRITE,
    flags: uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS,
  });
}

/** KVM_GET_DEVICE_ATTR on /dev/kvm: the u64 written at addr, or the errno name. */
function devAttr(host: Host, group: number, attr: number): bigint | string {
  const kvm = host.open('/dev/kvm');
  const buf = userBuf(host);
  const e = errnoOf(() => host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', { group, attr, addr: buf }));
  return e === 'ok' ? Buffer.from(host.mm.read(buf, 8)).readBigUInt64LE(0) : e;
}

function hasAttr(host: Host, group: number, attr: number): string {
  return errnoOf(() => host.ioctl(host.open('/dev/kvm'), 'KVM_HAS_DEVICE_ATTR', { group, attr }));
}

describe.each(SNP_KERNELS)('KVM_SEV_INIT2 (__sev_guest_init) on %s', (kernel) => {
  const r618 = releaseAtLeast(kernel, '6.18');

  it('ghcb_version above GHCB_VERSION_MAX (3) -> EINVAL on SEV-ES and SNP', () => {
    expect(init2(kernel, uapi.KVM_X86_SEV_ES_VM, { ghcb_version: 3 })).toBe('EINVAL');
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { ghcb_version: 3 })).toBe('EINVAL');
  });

  it('a non-zero ghcb_version on a plain SEV VM -> EINVAL (0 is ok)', () => {
    expect(init2(kernel, uapi.KVM_X86_SEV_VM, { ghcb_version: 1 })).toBe('EINVAL');
    expect(init2(kernel, uapi.KVM_X86_SEV_VM, { ghcb_version: 0 })).toBe('ok');
  });

  it(`ghcb_version 1 on an SNP VM -> ${r618 ? 'EINVAL (6.18+: minimum GHCB version 2)' : 'ok (no minimum before 6.18)'}; 0 (default 2) and 2 are ok; 1 on SEV-ES is ok`, () => {
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { ghcb_version: 1 })).toBe(r618 ? 'EINVAL' : 'ok');
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { ghcb_version: 0 })).toBe('ok');
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { ghcb_version: 2 })).toBe('ok');
    expect(init2(kernel, uapi.KVM_X86_SEV_ES_VM, { ghcb_version: 1 })).toBe('ok');
  });

  it(`vmsa_features Secure TSC (bit 9): SNP -> ${r618 ? 'ok (6.18+)' : 'EINVAL (not in sev_supported_vmsa_features before 6.18)'}; SEV-ES -> EINVAL; with DebugSwap on SNP -> ${r618 ? 'ok' : 'EINVAL'}`, () => {
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { vmsa_features: SECURE_TSC })).toBe(r618 ? 'ok' : 'EINVAL');
    expect(init2(kernel, uapi.KVM_X86_SEV_ES_VM, { vmsa_features: SECURE_TSC })).toBe('EINVAL');
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, { vmsa_features: SECURE_TSC | DEBUG_SWAP })).toBe(
      r618 ? 'ok' : 'EINVAL',
    );
  });

  it('copy_from_user of struct kvm_sev_init fails -> EFAULT', () => {
    expect(init2(kernel, uapi.KVM_X86_SNP_VM, 7)).toBe('EFAULT');
  });

  it('after KVM_CREATE_VCPU (kvm->created_vcpus) -> EINVAL', () => {
    const s = snpVm(kernel, { init2: false });
    s.host.ioctl(s.vm, 'KVM_CREATE_VCPU', 0);
    expect(errnoOf(() => s.enc('KVM_SEV_INIT2', {}))).toBe('EINVAL');
  });

  it('a second INIT2: SNP VM -> EPERM (sev_mem_enc_ioctl: only SNP commands once it is an SNP guest); SEV-ES VM -> EINVAL (!need_init)', () => {
    const s = snpVm(kernel, { start: false });
    const cmd = { id: uapi.KVM_SEV_INIT2, sev_fd: s.sev, data: {}, error: 77 };
    expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EPERM');
    expect(cmd.error).toBe(77); // goto out: no copy back
    const host = createHost({ kernel, platform: 'snp' });
    const vm = host.ioctl(host.open('/dev/kvm'), 'KVM_CREATE_VM', uapi.KVM_X86_SEV_ES_VM);
    const again = () =>
      host.ioctl(vm, 'KVM_MEMORY_ENCRYPT_OP', {
        id: uapi.KVM_SEV_INIT2,
        sev_fd: host.open('/dev/sev'),
        data: {},
      });
    expect(errnoOf(again)).toBe('ok');
    expect(errnoOf(again)).toBe('EINVAL');
  });
});

describe.each(SNP_KERNELS)('KVM_SEV_SNP_LAUNCH_START on %s', (kernel) => {
  const r618 = releaseAtLeast(kernel, '6.18');
  const r619 = releaseAtLeast(kernel, '6.19');

  it.each([
    ['ABI major 2', 0x3_0200n],
    ['ABI 1.56 (minor above the firmware 1.55)', 0x3_0138n],
  ])(
    'a policy asking for %s -> EIO, error POLICY_FAILURE (firmware); 1.55 itself is accepted',
    (_w, policy) => {
      const s = snpVm(kernel, { start: false });
      const cmd = { id: 'KVM_SEV_SNP_LAUNCH_START', sev_fd: s.sev, data: { policy }, error: 0 };
      expect(errnoOf(() => s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd))).toBe('EIO');
      expect(cmd.error).toBe(uapi.SEV_RET_POLICY_FAILURE);
      expect(s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x3_0137n }).error).toBe(0);
    },
  );

  it('policy bits 21-25 with the modelled firmware (no SNP_FEATURE_INFO) -> EINVAL', () => {
    for (let b = 21n; b <= 25n; b++) {
      const s = snpVm(kernel, { start: false });
      expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x3_0000n | (1n << b) }))).toBe(
        'EINVAL',
      );
    }
  });

  it(`RAPL_DIS (bit 23) on firmware advertising it: ${r619 ? 'accepted (6.19+: firmware policy bits)' : 'EINVAL (SNP_POLICY_MASK_VALID before 6.19)'}`, () => {
    const s = snpVm(kernel, { start: false });
    const psp = (s.host.platform as SnpPlatform).psp;
    psp.featureInfo = true;
    psp.featureInfoEcx = 1 << 2; // SNP_RAPL_DISABLE_SUPPORTED
    const policy = 0x3_0000n | (1n << 23n);
    expect(errnoOf(() => s.enc('KVM_SEV_SNP_LAUNCH_START', { policy }))).toBe(r619 ? 'ok' : 'EINVAL');
  });

  it(`Secure TSC: DESIRED_TSC_FREQ is the host tsc_khz (2400000) ${r618 ? 'when vmsa_features has Secure TSC' : '(never: no Secure TSC before 6.18)'}, 0 otherwise`, () => {
    const plain = snpVm(kernel);
    expect(snpGuestContext(plain.host, plain.vm)?.desiredTscKhz).toBe(0);
    if (!r618) return;
    const s = snpVm(kernel, { init2: false });
    s.enc('KVM_SEV_INIT2', { vmsa_features: SECURE_TSC });
    s.enc('KVM_SEV_SNP_LAUNCH_START', { policy: 0x3_0000n });
    expect(snpGuestContext(s.host, s.vm)?.desiredTscKhz).toBe(2_400_000);
  });
});

describe.each(SNP_KERNELS)('KVM_SEV_SNP_LAUNCH_UPDATE error paths on %s', (kernel) => {
  const r618 = releaseAtLeast(kernel, '6.18');
  const update = (s: ReturnType<typeof snpVm>, data: Record<string, unknown>) => {
    const cmd = { id: 'KVM_SEV_SNP_LAUNCH_UPDATE', sev_fd: s.sev, data, error: 0 };
    let message = '';
    const code = errnoOf(() => {
      try {
        s.host.ioctl(s.vm, 'KVM_MEMORY_ENCRYPT_OP', cmd);
      } catch (e) {
        message = String((e as Error).message);
        throw e;
      }
    });
    return { code, error: cmd.error, message };
  };

  it(`len 0 -> ${r618 ? 'EINVAL (6.18+, 5b66e335ead6)' : 'success, nothing populated, params unchanged (kvm_gmem_populate returns 0)'}`, () => {
    const s = snpVm(kernel);
    const data = { gfn_start: 5, uaddr: s.hva, len: 0, type: NORMAL };
    const r = update(s, data);
    if (r618) {
      expect(r.code).toBe('EINVAL');
    } else {
      expect(r.code).toBe('ok');
      expect(data).toEqual({ gfn_start: 5, uaddr: s.hva, len: 0, type: NORMAL });
      expect(snpGuestContext(s.host, s.vm)?.launchDigest.updates).toBe(0);
    }
  });

  it('the guest_memfd was closed (kvm_gmem_get_file() NULL: -EFAULT) -> EIO, error 0', () => {
    const s = snpVm(kernel);
    s.host.close(s.gmem);
    const r = update(s, { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL });
    expect([r.code, r.error]).toEqual(['EIO', 0]);
    expect(r.message).toMatch(/EFAULT/);
  });

  it('a signal pending (kvm_gmem_populate: -EINTR before the first page) -> EIO, error 0, nothing done', () => {
    const s = snpVm(kernel);
    s.host.signalPending = true;
    const data = { gfn_start: 0, uaddr: s.hva, len: 2 * PAGE, type: NORMAL };
    const r = update(s, data);
    expect([r.code, r.error]).toEqual(['EIO', 0]);
    expect(r.message).toMatch(/EINTR/);
    expect(data.len).toBe(2 * PAGE);
  });

  it('a hwpoisoned guest_memfd folio (__kvm_gmem_get_pfn: -EHWPOISON) -> EIO, error 0', () => {
    const s = snpVm(kernel);
    s.host.fallocate(s.gmem, uapi.FALLOC_FL_KEEP_SIZE, 0, PAGE);
    s.host.memoryFailure(s.gmem, 0);
    const r = update(s, { gfn_start: 0, uaddr: s.hva, len: PAGE, type: NORMAL });
    expect([r.code, r.error]).toEqual(['EIO', 0]);
    expect(r.message).toMatch(/EHWPOISON/);
  });
});

describe.each(allProfiles().map((p) => p.name))(
  '/dev/kvm KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on %s',
  (kernel) => {
    const r610 = releaseAtLeast(kernel, '6.10');
    const r618 = releaseAtLeast(kernel, '6.18');
    const r619 = releaseAtLeast(kernel, '6.19');
    const G = uapi.KVM_X86_GRP_SEV;

    it(`KVM_X86_GRP_SEV / KVM_X86_SEV_VMSA_FEATURES on an SNP host: ${r610 ? (r618 ? 'DebugSwap | Secure TSC' : 'DebugSwap') : 'ENXIO (no dev_get_attr before 6.10)'}`, () => {
      const host = createHost({ kernel, platform: 'snp' });
      const want = r610 ? (r618 ? DEBUG_SWAP | SECURE_TSC : DEBUG_SWAP) : 'ENXIO';
      expect(devAttr(host, G, uapi.KVM_X86_SEV_VMSA_FEATURES)).toBe(want);
      expect(hasAttr(host, G, uapi.KVM_X86_SEV_VMSA_FEATURES)).toBe(r610 ? 'ok' : 'ENXIO');
    });

    it(`KVM_X86_SNP_POLICY_BITS: ${r619 ? 'SNP_POLICY_MASK_BASE & KVM_SNP_POLICY_MASK_VALID = 0x1bffff; with SNP_FEATURE_INFO (RAPL, ciphertext hiding, AES-256-XTS, CXL) 0x1fbffff' : 'ENXIO (6.19+)'}`, () => {
      const host = createHost({ kernel, platform: 'snp' });
      expect(devAttr(host, G, uapi.KVM_X86_SNP_POLICY_BITS)).toBe(r619 ? POLICY_BITS_BASE_KVM : 'ENXIO');
      if (!r619) return;
      const psp = (host.platform as SnpPlatform).psp;
      psp.featureInfo = true;
      psp.featureInfoEcx = 0x3c; // bits 2-5; PAGE_SWAP_DISABLE needs firmware 1.58
      expect(devAttr(host, G, uapi.KVM_X86_SNP_POLICY_BITS)).toBe(POLICY_BITS_BASE_KVM | 0x1e0_0000n);
    });

    const r70 = releaseAtLeast(kernel, '7.0');
    it(`KVM_X86_SEV_SNP_REQ_CERTS (2): ${r70 ? '1 (sev_snp_enabled; 7.0, 20c3c4108d58)' : 'ENXIO (7.0+)'}`, () => {
      const host = createHost({ kernel, platform: 'snp' });
      expect(devAttr(host, G, uapi.KVM_X86_SEV_SNP_REQ_CERTS)).toBe(r70 ? 1n : 'ENXIO');
      expect(hasAttr(host, G, uapi.KVM_X86_SEV_SNP_REQ_CERTS)).toBe(r70 ? 'ok' : 'ENXIO');
    });

    it('unknown attribute in KVM_X86_GRP_SEV, unknown group, unknown group-0 attribute -> ENXIO; group 0 KVM_X86_XCOMP_GUEST_SUPP exists', () => {
      const host = createHost({ kernel, platform: 'snp' });
      expect(devAttr(host, G, 3)).toBe('ENXIO');
      expect(hasAttr(host, G, 3)).toBe('ENXIO');
      expect(devAttr(host, 2, 0)).toBe('ENXIO');
      expect(devAttr(host, 0, 1)).toBe('ENXIO');
      expect(hasAttr(host, 0, uapi.KVM_X86_XCOMP_GUEST_SUPP)).toBe('ok');
    });

    it('KVM_X86_GRP_SEV on a host without the SVM dev_get_attr (generic, tdx) -> ENXIO', () => {
      for (const platform of ['generic', 'tdx'] as const) {
        const host = createHost({ kernel, platform });
        expect(devAttr(host, G, uapi.KVM_X86_SEV_VMSA_FEATURES)).toBe('ENXIO');
      }
    });

    it('bad pointers: struct not readable -> EFAULT; addr 0 or unmapped -> EFAULT (put_user); HAS_DEVICE_ATTR writes nothing', () => {
      const host = createHost({ kernel, platform: 'snp' });
      const kvm = host.open('/dev/kvm');
      const attr = { group: 0, attr: uapi.KVM_X86_XCOMP_GUEST_SUPP };
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', 7))).toBe('EFAULT');
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_HAS_DEVICE_ATTR', 7))).toBe('EFAULT');
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', { ...attr, addr: 0 }))).toBe('EFAULT');
      expect(
        errnoOf(() => host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', { ...attr, addr: 0x7000_0000_0000n })),
      ).toBe('EFAULT');
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_HAS_DEVICE_ATTR', { ...attr, addr: 0 }))).toBe('ok');
      // The lookup comes first: an unknown attribute with a bad address is still ENXIO.
      expect(errnoOf(() => host.ioctl(kvm, 'KVM_GET_DEVICE_ATTR', { group: 0, attr: 1, addr: 0 }))).toBe(
        'ENXIO',
      );
    });
  },
);
