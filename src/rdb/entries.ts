import type { LogicalType } from './types.js';

/**
 * What the RDB parser hands downstream, one entry at a time.
 *
 * A key arrives either whole, as a raw RESTORE payload (`key`), or, when it is too big for one
 * command or the target cannot take its encoding, as `key-begin`, a series of bounded
 * `key-chunk`s and `key-end`: the only shape in which a big key ever exists in Ferry.
 */
export type RdbEntry =
  | AuxEntry
  | SelectDbEntry
  | ResizeDbEntry
  | FunctionEntry
  | ModuleAuxEntry
  | KeyMetaSkippedEntry
  | WholeKeyEntry
  | KeyBeginEntry
  | KeyChunkEntry
  | KeyEndEntry
  | EndOfSnapshotEntry;

export interface AuxEntry { kind: 'aux'; name: string; value: Buffer }
export interface SelectDbEntry { kind: 'select-db'; db: number }
export interface ResizeDbEntry { kind: 'resize-db'; db: number; keys: number; expires: number }
/** A function library (FUNCTION2 opcode): its source, to be replayed with FUNCTION LOAD REPLACE. */
export interface FunctionEntry { kind: 'function'; code: Buffer }
/** Module auxiliary data: it has no command form and cannot be moved by RESTORE. */
export interface ModuleAuxEntry { kind: 'module-aux'; module: string }

/** Redis 8.6+ per-key module metadata (KEY_META): read past, reported, not migrated. */
export interface KeyMetaSkippedEntry { kind: 'key-meta-skipped'; db: number; key: Buffer; classes: string[] }

/** What every key carries, whichever shape it arrives in. */
export interface KeyHeader {
  db: number;
  key: Buffer;
  /** RDB type id (see RdbType). */
  rdbType: number;
  logical: LogicalType;
  /** Absolute expiry in unix ms, or null. */
  expireAtMs: number | null;
  /** LRU idle seconds (IDLE opcode), when the source recorded it. */
  idleSeconds: number | null;
  /** LFU counter (FREQ opcode), when the source recorded it. */
  lfuFreq: number | null;
}

export interface WholeKeyEntry extends KeyHeader {
  kind: 'key';
  readonly keyLength: number;
  readonly valueLength: number;
  /** Copy the key name / the value bytes into `out` at `at` without creating views (hot path). */
  copyKey(out: Buffer, at: number): number;
  copyValue(out: Buffer, at: number): number;
  /** The value's bytes exactly as in the RDB (what follows the key name). */
  value: Buffer;
  /** Type byte + value: a DUMP payload without its footer (built on demand). */
  readonly payload: Buffer;
  /** RDB version of the file the payload comes from. */
  rdbVersion: number;
}

export interface KeyBeginEntry extends KeyHeader {
  kind: 'key-begin';
  /** Why the key is streamed instead of restored whole. */
  reason: 'too-big' | 'not-restorable';
}

/** A bounded piece of a key's value, in the shape of the commands that rebuild it. */
export type KeyChunk =
  | { type: 'string'; data: Buffer }
  | { type: 'list'; items: Buffer[] }
  | { type: 'set'; members: Buffer[] }
  | { type: 'zset'; members: Buffer[]; scores: Buffer[] }
  /** `expireAtMs[i]` is the absolute TTL of `fields[i]`, 0 when it has none (hash-field TTL, 7.4+). */
  | { type: 'hash'; fields: Buffer[]; values: Buffer[]; expireAtMs?: number[] }
  | { type: 'stream-entries'; entries: StreamEntry[] }
  | { type: 'stream-meta'; meta: StreamMeta }
  /** The key cannot be rebuilt from commands (module values): the engine reports it as an error. */
  | { type: 'unrewritable'; reason: string };

export interface KeyChunkEntry { kind: 'key-chunk'; chunk: KeyChunk }
export interface KeyEndEntry { kind: 'key-end' }

export interface EndOfSnapshotEntry {
  kind: 'end';
  /** Null when the file carries no checksum (version < 5, or saved with rdbchecksum no). */
  checksumVerified: boolean | null;
  keys: number;
}

export interface StreamId { ms: bigint; seq: bigint }

export interface StreamEntry {
  id: StreamId;
  fields: Buffer[] /* name, value, name, value... */;
  /** Deleted by XDEL but still in its node: not part of the stream, maybe still pending in a group. */
  deleted?: boolean;
}

export interface StreamPendingEntry { id: StreamId; deliveryTimeMs: bigint; deliveryCount: number; consumer: Buffer | null }

export interface StreamConsumer { name: Buffer; seenTimeMs: bigint; activeTimeMs: bigint | null; pending: StreamId[] }

export interface StreamGroup {
  name: Buffer;
  lastId: StreamId;
  /** Null before RDB stream v2 (Redis < 7.0); 2^64-1 when the source did not know it. */
  entriesRead: bigint | null;
  pending: StreamPendingEntry[];
  consumers: StreamConsumer[];
}

export interface StreamMeta {
  length: bigint;
  lastId: StreamId;
  firstId: StreamId | null;
  maxDeletedId: StreamId | null;
  entriesAdded: bigint | null;
  groups: StreamGroup[];
}
