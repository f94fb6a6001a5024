/** The registry of kernel profiles, in release order. */
import { tdxDev2024, tdxDev2024Eexist, tdxDev2024EexistPoc } from './tdx-dev-2024-07.js';
import type { KernelProfile } from './types.js';
import { v6_8 } from './v6.8.js';
import { v6_11 } from './v6.11.js';
import { v6_11_rc1 } from './v6.11-rc1.js';
import { v6_16 } from './v6.16.js';
import { v6_18 } from './v6.18.js';
import { v6_18NoDirectMap } from './v6.18-no-direct-map.js';
import { v6_19 } from './v6.19.js';
import { v7_0 } from './v7.0.js';

export type { GmemPreparation, KernelProfile, ProfileSource, TdxInitMemRegion } from './types.js';

const PROFILES: readonly KernelProfile[] = [
  v6_8,
  v6_11_rc1,
  v6_11,
  v6_16,
  v6_18,
  v6_19,
  v7_0,
  tdxDev2024,
  tdxDev2024Eexist,
  tdxDev2024EexistPoc,
  v6_18NoDirectMap,
];

/** Every profile name, in release order (dev-tree profiles last). */
export function kernels(): string[] {
  return PROFILES.map((p) => p.name);
}

export function allProfiles(): readonly KernelProfile[] {
  return PROFILES;
}

export function getProfile(name: string): KernelProfile | undefined {
  return PROFILES.find((p) => p.name === name);
}
