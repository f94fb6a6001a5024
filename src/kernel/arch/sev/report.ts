/**
 * Reading the PSP's view of a guest from outside the kernel: what an attestation report of the
 * guest behind a VM fd carries (MEASUREMENT, policy, host data), and the launch digest the guest
 * context holds while the launch is in progress. This is platform state, not a syscall: measure/
 * reads the digest here rather than computing one.
 */
import type { Host } from '../../host.js';
import { VmFile } from '../../kvm/vm.js';
import type { SnpAttestationReport, SnpGuestContext } from './psp.js';
import { SevArchVm } from './sev.js';

function sevArchOf(host: Host, vmFd: number): SevArchVm | undefined {
  const f = host.fds.lookup(vmFd);
  if (!(f instanceof VmFile)) return undefined;
  return f.vm.arch instanceof SevArchVm ? f.vm.arch : undefined;
}

/** The PSP guest context of the SNP VM behind `vmFd` (after KVM_SEV_SNP_LAUNCH_START). */
export function snpGuestContext(host: Host, vmFd: number): SnpGuestContext | undefined {
  const arch = sevArchOf(host, vmFd);
  const h = arch?.sev.snpContext;
  return h === undefined ? undefined : arch!.platform.psp.context(h);
}

/** The attestation report's fields for the guest behind `vmFd` (after KVM_SEV_SNP_LAUNCH_FINISH). */
export function snpAttestationReport(host: Host, vmFd: number): SnpAttestationReport | undefined {
  const arch = sevArchOf(host, vmFd);
  const h = arch?.sev.snpContext;
  return h === undefined ? undefined : arch!.platform.psp.attestationReport(h);
}

/** Seed the guest context's digest before any page is measured (--snp-ovmf-hash). */
export function snpSeedLaunchDigest(host: Host, vmFd: number, digest: Uint8Array): boolean {
  const arch = sevArchOf(host, vmFd);
  const h = arch?.sev.snpContext;
  if (h === undefined) return false;
  arch!.platform.psp.seedLaunchDigest(h, digest);
  return true;
}
