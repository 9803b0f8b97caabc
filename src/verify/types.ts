/** Public types of the verifier (kept apart so the internal modules can share them without cycles). */

import type { Endpoint } from '../common/endpoint.js';
import type { DbMapper } from '../engine/db-map.js';

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'value' | 'ttl' | 'field-ttl' | 'function';

export const DIFFERENCE_KINDS: readonly DifferenceKind[] = ['missing', 'extra', 'type', 'value', 'ttl', 'field-ttl', 'function'];

export interface Difference {
  /**
   * The source db of the key when the key can be tied to a source db (also for an 'extra'
   * target key whose name maps back to one); the target db when it cannot; -1 for
   * server-wide state (function libraries).
   */
  db: number;
  /**
   * Printable key name (see common/printable), as the source names it when `db` is a source
   * db, as the target names it otherwise; the library name for 'function'. When the target
   * name or db differs (prefix, db mapping) the detail ends with `[target db N "name"]`.
   */
  key: string;
  kind: DifferenceKind;
  /** What differs, source value first: `list element 17: "a" vs "b"`, `pttl 3600000 vs (none)`. */
  detail: string;
}

export type VerifyPhase = 'source-keys' | 'target-keys' | 'functions' | 'waiting' | 'recheck' | 'done';

export interface VerifyProgress {
  /** 1-based round being run. */
  round: number;
  /** Rounds asked for (fewer run when a round leaves nothing to re-check). */
  rounds: number;
  phase: VerifyPhase;
  /** Keys compared so far (round 1 only: later rounds re-check a subset). */
  keysChecked: number;
  /** Keys (and libraries) that differ as of now: found in round 1, still differing in later rounds. */
  differingKeys: number;
}

export interface VerifyOptions {
  source: Endpoint[];
  target: Endpoint[];
  /** The migration's db mapping and prefixes (default: every db to itself; db 0 on a cluster target). */
  dbs?: DbMapper;
  /** Default 1. Round 1 checks everything; later rounds re-check only the keys that differed. */
  rounds?: number;
  /** Pause before each later round, default 1000 ms. */
  roundDelayMs?: number;
  /** Allowed PTTL (and hash-field expire time) difference, default 2000 ms. */
  ttlToleranceMs?: number;
  /** Differences listed in the report (all are counted), default 100. */
  maxReported?: number;
  onProgress?: (p: VerifyProgress) => void;
  signal?: AbortSignal;
  /**
   * Called (and awaited) for each difference found in round 1, as it is found, with the source
   * key it concerns (null for a target key no source db accounts for, and for libraries):
   * scan mode's repair rounds re-copy those keys. Not bounded by maxReported or the re-check limit.
   */
  onDifference?: (d: Difference, source: { db: number; key: Buffer } | null) => void | Promise<void>;
}

export interface VerifyReport {
  equal: boolean;
  /** Distinct keys compared in round 1: every source key, plus target keys with no source counterpart. */
  keysChecked: number;
  /** Rounds actually run. */
  rounds: number;
  /** Differences per kind, over every key that differed in every round (one per key and kind). */
  counts: Record<DifferenceKind, number>;
  /** The first `maxReported` differences, in the order they were found. */
  differences: Difference[];
  durationMs: number;
}
