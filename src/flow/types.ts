/** A loaded flow: validated, expressions parsed, every step with its file:line:column. */
import type { MapGpaVia } from '../kernel/guest/program.js';
import type { PlatformName } from '../kernel/platform.js';
import type { ErrnoName } from '../uapi/errno.js';
import type { Expr } from './expr.js';

export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** An argument value with its expressions parsed. */
export type CValue =
  | { readonly k: 'expr'; readonly e: Expr; readonly src: string }
  | { readonly k: 'lit'; readonly v: string | number | boolean | null }
  | { readonly k: 'arr'; readonly items: readonly CValue[] }
  | { readonly k: 'obj'; readonly fields: ReadonlyArray<readonly [string, CValue]> };

export type CData =
  | { readonly k: 'bytes'; readonly items: readonly CValue[] }
  | { readonly k: 'fill'; readonly fill: CValue; readonly length: CValue }
  | { readonly k: 'raw'; readonly bytes: Uint8Array };

export type SignalName = 'SIGBUS' | 'SIGSEGV';
export type ResultExpect = 'ok' | 'any' | ErrnoName | SignalName;

export interface Expect {
  readonly result: ResultExpect;
  /** KVM_RUN: the expected exit reason (uAPI name). */
  readonly exit?: string;
  readonly value?: CValue;
  /** Bits the return value must have set (a VMM's feature check). */
  readonly bits?: CValue;
  readonly out?: ReadonlyArray<readonly [string, CValue]>;
}

export type GuestOpSpec =
  | {
      readonly op: 'read';
      readonly gpa: CValue;
      readonly length: CValue;
      readonly shared?: boolean;
      readonly emulated?: boolean;
      /** The bytes the read must return (checked by the run step that completes it). */
      readonly expect?: CData;
    }
  | {
      readonly op: 'write';
      readonly gpa: CValue;
      readonly data: CData;
      readonly shared?: boolean;
      readonly emulated?: boolean;
    }
  | { readonly op: 'accept'; readonly gpa: CValue; readonly size: CValue }
  | {
      readonly op: 'map_gpa';
      readonly gpa: CValue;
      readonly npages: CValue;
      readonly private: boolean;
      readonly via?: MapGpaVia;
    }
  | { readonly op: 'terminate'; readonly reasonSet?: number; readonly reasonCode?: number }
  | { readonly op: 'shutdown' }
  | { readonly op: 'hlt' };

interface StepBase {
  readonly name?: string;
  readonly note?: string;
  readonly loc: Loc;
  readonly expect: Expect;
  /** Where the step is in the file's structure, e.g. "steps[4].steps[1]". */
  readonly path: string;
}

export type Step =
  | (StepBase & { readonly kind: 'open'; readonly path_: string; readonly as?: string })
  | (StepBase & {
      readonly kind: 'ioctl';
      readonly request: string;
      readonly fd: CValue;
      readonly arg?: CValue;
      readonly as?: string;
      readonly out?: string;
    })
  | (StepBase & {
      readonly kind: 'mmap';
      readonly length: CValue;
      readonly prot: CValue;
      readonly flags: CValue;
      readonly fd?: CValue;
      readonly offset?: CValue;
      readonly addr?: CValue;
      readonly as?: string;
    })
  | (StepBase & { readonly kind: 'munmap'; readonly addr: CValue; readonly length: CValue })
  | (StepBase & { readonly kind: 'write'; readonly addr: CValue; readonly data: CData })
  | (StepBase & {
      readonly kind: 'read';
      readonly addr: CValue;
      readonly length: CValue;
      readonly want?: CData;
    })
  | (StepBase & {
      readonly kind: 'madvise';
      readonly addr: CValue;
      readonly length: CValue;
      readonly advice: CValue;
    })
  | (StepBase & {
      readonly kind: 'mprotect';
      readonly addr: CValue;
      readonly length: CValue;
      readonly prot: CValue;
    })
  | (StepBase & {
      readonly kind: 'fallocate';
      readonly fd: CValue;
      readonly mode: CValue;
      readonly offset: CValue;
      readonly len: CValue;
    })
  | (StepBase & { readonly kind: 'close'; readonly fd: CValue })
  | (StepBase & { readonly kind: 'guest'; readonly vcpu: CValue; readonly program: readonly GuestOpSpec[] })
  | (StepBase & { readonly kind: 'run'; readonly vcpu: CValue; readonly as?: string })
  | (StepBase & {
      readonly kind: 'repeat';
      readonly var?: string;
      readonly from?: CValue;
      readonly to?: CValue;
      readonly step?: CValue;
      readonly over?: readonly CValue[];
      readonly until?: CValue;
      readonly max: number;
      readonly steps: readonly Step[];
    });

/** What the sources say a flow does on one profile. */
export interface Outcome {
  /** 'ok': every expectation holds. Otherwise the result of the first unexpected step. */
  readonly result: 'ok' | 'invariant' | 'mismatch' | ErrnoName | SignalName;
  /** The name of that step. */
  readonly at?: string;
  readonly why?: string;
  readonly loc: Loc;
}

export interface FlowSource {
  readonly vmm: string;
  readonly version: string;
  readonly files: readonly string[];
  readonly url?: string;
  readonly notes?: string;
}

export interface Flow {
  readonly file: string;
  readonly name: string;
  readonly title: string;
  readonly description?: string;
  readonly platform: PlatformName;
  readonly source: FlowSource;
  /** By profile name; 'others' covers profiles not listed. */
  readonly outcomes: ReadonlyMap<string, Outcome>;
  readonly steps: readonly Step[];
}
