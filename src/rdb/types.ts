/**
 * Shared vocabulary of the snapshot stage: what the RDB parser hands to the engine.
 *
 * The parser emits *entries*, never whole big objects: a key either arrives whole as a raw
 * RESTORE payload (small keys) or as a begin / element-batches / end sequence (big keys, or
 * when the target cannot take the payload), so no stage has to hold a big key in memory.
 */

/** One decoded element of a compact encoding (listpack, ziplist, intset, zipmap). */
export type BlobElement = Buffer | number | bigint;

/** RDB object type ids (src/rdb.h). Type 22 and opcode 243 mean different things under VALKEY magic. */
export const RdbType = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21,
  /** REDIS magic: HASH_METADATA_PRE_GA (7.4 RC). VALKEY magic: HASH_2 (per-field TTL). */
  HASH_METADATA_PRE_GA: 22,
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
  STREAM_LISTPACKS_4: 26,
  STREAM_LISTPACKS_5: 27,
} as const;

export const RdbOpcode = {
  /** REDIS >= 13: KEY_META. VALKEY: SLOT_IMPORT. */
  KEY_META_OR_SLOT_IMPORT: 243,
  SLOT_INFO: 244,
  FUNCTION2: 245,
  FUNCTION_PRE_GA: 246,
  MODULE_AUX: 247,
  IDLE: 248,
  FREQ: 249,
  AUX: 250,
  RESIZEDB: 251,
  EXPIRETIME_MS: 252,
  EXPIRETIME: 253,
  SELECTDB: 254,
  EOF: 255,
} as const;

/** The logical Redis type a key becomes, whatever its encoding in the file. */
export type LogicalType = 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream' | 'module';
