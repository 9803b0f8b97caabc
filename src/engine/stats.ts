import type { WriteError } from './errors.js';

export type MigrationPhase = 'connecting' | 'snapshot' | 'incremental' | 'done' | 'stopped' | 'failed';

export interface SnapshotStats {
  /** Keys the source holds (INFO keyspace when the sync started); an estimate for the ETA. */
  keysExpected: number | null;
  /** Snapshot size when the source announced it (disk-based sync); null for diskless. */
  bytesTotal: number | null;
  bytesRead: number;
  keys: number;
  restored: number;
  rewritten: number;
  expiredSkipped: number;
  filtered: number;
  functions: number;
  skippedModuleAux: number;
  skippedKeyMeta: number;
  /** Keys written (restored or rewritten), by type: string, list, set, zset, hash, stream, module. */
  keysByType: Record<string, number>;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface StreamStats {
  /** Offset after the last byte received from the source's stream. */
  receivedOffset: number;
  /** Offset after the last command the target has acknowledged (what the source is told). */
  appliedOffset: number;
  /** The source's own master_repl_offset, last polled. */
  sourceOffset: number | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  commandsForwarded: number;
  commandsDropped: number;
  transactions: number;
}

/**
 * Where the target stands in the source's history: resuming with PSYNC <replid> <offset + 1>
 * and SELECT <db> neither skips nor repeats a write. Taken at command boundaries outside MULTI.
 */
export interface Checkpoint {
  replid: string;
  appliedOffset: number;
  db: number;
}

/** Refused writes: counted, by error code, the most recent ones in full. */
export interface WriteErrorsView {
  count: number;
  byCode: Record<string, number>;
  recent: WriteError[];
  /** Refusals that passed when sent again (OOM, LOADING...), by error code: not errors, but the target pushed back. */
  retriedByCode?: Record<string, number>;
}

/** One source master's replication (a standalone source has exactly one). */
export interface ShardProgress {
  source: string;
  phase: 'connecting' | 'snapshot' | 'incremental' | 'reconnecting' | 'done' | 'stopped' | 'failed';
  replid: string | null;
  checkpoint: Checkpoint | null;
  stream: StreamStats;
  reconnects: number;
  fullResyncs: number;
  /** How this shard reads its source: replication (psync) or keyspace scans (scan). */
  mode?: SourceMode;
  /** Why scan mode runs (asked for, or the source's refusal of PSYNC). */
  modeReason?: string;
  /** Scan mode only. */
  scan?: ScanStats;
}

export type SourceMode = 'psync' | 'scan';

/** One verify-and-repair round of scan mode. */
export interface RepairRound {
  round: number;
  /** Why it ran: the first after the full phase, a lost subscription, FLUSHDB seen... */
  reason: string;
  startedAt: number;
  finishedAt: number | null;
  keysChecked: number;
  /** Keys that differed and were not already waiting to be copied: re-copied (or deleted). */
  found: number;
}

/** Scan mode's counters (lag is stream.lagBytes: keys waiting to be copied). */
export interface ScanStats {
  keysScanned: number;
  keysCopied: number;
  /** Copies caused by keyspace notifications. */
  keysRecopied: number;
  /** Copies caused by repair rounds. */
  keysRepaired: number;
  keysDeleted: number;
  /** Keys read with type commands (too big for one DUMP, not restorable, or DUMP refused). */
  keysChunked: number;
  notifications: number;
  /** Keys queued (changed, not yet copied) and being copied. */
  keysWaiting: number;
  dirtyOverflows: number;
  subscriptionLosses: number;
  /** notify-keyspace-events: enabled by Ferry (restored at the end), already set, or unknown. */
  notificationSetup: 'enabled' | 'already' | 'unknown' | 'off';
  /** The last rounds, oldest first. */
  rounds: RepairRound[];
}

/** A point-in-time view of a migration, for the CLI, the JSON output and (later) the API. */
export interface MigrationProgress {
  phase: MigrationPhase;
  /** After a cutover (src/engine/cutover.ts): forward is source → target, reverse the other way. */
  direction?: 'forward' | 'reverse';
  replid: string | null;
  /** Null until the stream phase has begun (the first shard's; every shard's is in `shards`). */
  checkpoint: Checkpoint | null;
  shards: ShardProgress[];
  snapshot: SnapshotStats;
  stream: StreamStats;
  /** Source links lost and re-established; full resyncs after the first sync. */
  reconnects: number;
  fullResyncs: number;
  errors: WriteErrorsView;
  failure: string | null;
  /** The mode the shards run in, and why (source mode auto falls back to scan on a refused PSYNC). */
  sourceMode?: { mode: SourceMode; reason: string | null };
}

export function emptySnapshotStats(): SnapshotStats {
  return {
    keysExpected: null,
    bytesTotal: null,
    bytesRead: 0,
    keys: 0,
    restored: 0,
    rewritten: 0,
    expiredSkipped: 0,
    filtered: 0,
    functions: 0,
    skippedModuleAux: 0,
    skippedKeyMeta: 0,
    keysByType: {},
    startedAt: null,
    finishedAt: null,
  };
}

export function emptyStreamStats(): StreamStats {
  return {
    receivedOffset: 0,
    appliedOffset: 0,
    sourceOffset: null,
    lagBytes: null,
    lagSeconds: null,
    commandsForwarded: 0,
    commandsDropped: 0,
    transactions: 0,
  };
}
