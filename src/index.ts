/**
 * gmemlab: an executable model of Linux KVM guest_memfd and confidential-VM launch.
 * The public API is DESIGN.md's contract.
 */
import './kernel/arch/register.js';

export {
  type Flow,
  FlowLoadError,
  type FlowRun,
  FlowRunError,
  loadFlow,
  type MatrixResult,
  parseFlow,
  runFlow,
  runMatrix,
  type StepResult,
} from './flow/index.js';
export { HostFault, InvariantViolation, SyscallError } from './kernel/errors.js';
export type { GuestOp } from './kernel/guest/program.js';
export { createHost, Host, type HostOptions } from './kernel/host.js';
export { INVARIANTS } from './kernel/invariants/index.js';
export type { KvmRun } from './kernel/kvm/vcpu.js';
export { allProfiles, getProfile, kernels } from './kernel/profiles/index.js';
export type { KernelProfile, ProfileBugs } from './kernel/profiles/types.js';
export type { Provenance } from './kernel/provenance.js';
export { uapi } from './uapi/index.js';
