/**
 * A small builder for crafting RDB files byte by byte, for parser tests of formats no server
 * at hand can produce (RDB 1 and 2, ziplists, zipmaps, 7.4 release candidates, Redis 8.6+, Valkey 9).
 *
 * Primitives (`len`, `str`, `scoreString`, ...) return Buffers; value writers return a `RdbValue`
 * ({ type, body }) whose `payloadOf()` is exactly what the parser hands on as a RESTORE payload
 * (type byte + value bytes). `RdbWriter` strings everything together and `finish()` appends
 * EOF and, for version >= 5, the CRC64 trailer.
 *
 * Layouts follow src/rdb.c, src/t_stream.c and /work/shared/reference/redis-replication-rdb.md
 * section 2; see the comments on each writer.
 */
import { Buffer } from 'node:buffer';
import { crc64 } from '../../src/rdb/crc64.js';
import { lzfCompress } from './lzf-compress.js';
import {
  encodeIntset,
  encodeListpack,
  encodeZiplist,
  encodeZipmap,
  type EncodableItem,
  type ZipmapPair,
} from './rdb-encoders.js';

export type Text = string | Buffer;
export type Magic = 'REDIS' | 'VALKEY';

export function bytes(t: Text): Buffer {
  return typeof t === 'string' ? Buffer.from(t, 'utf8') : t;
}

/** A string, Buffer or number as the bytes Redis would hold (numbers as decimal text). */
export function textOf(t: Text | number): Buffer {
  return typeof t === 'number' ? Buffer.from(String(t)) : bytes(t);
}

// ---------------------------------------------------------------------------------------------
// Primitives

/** Which length form to use; by default the smallest that holds the value (like rdbSaveLen). */
export type LenWidth = 6 | 14 | 32 | 64;

/** An RDB length (rdbSaveLen): 6-bit, 14-bit BE, 0x80 + u32 BE or 0x81 + u64 BE. */
export function len(n: number | bigint, width?: LenWidth): Buffer {
  const v = BigInt.asUintN(64, BigInt(n)); // module SINT values are saved as their uint64 bits
  const w: LenWidth = width ?? (v < 64n ? 6 : v < 16384n ? 14 : v <= 0xffffffffn ? 32 : 64);
  switch (w) {
    case 6:
      if (v >= 64n) throw new RangeError(`len: ${v} does not fit in 6 bits`);
      return Buffer.from([Number(v)]);
    case 14:
      if (v >= 16384n) throw new RangeError(`len: ${v} does not fit in 14 bits`);
      return Buffer.from([0x40 | Number(v >> 8n), Number(v & 0xffn)]);
    case 32: {
      if (v > 0xffffffffn) throw new RangeError(`len: ${v} does not fit in 32 bits`);
      const b = Buffer.alloc(5);
      b[0] = 0x80;
      b.writeUInt32BE(Number(v), 1);
      return b;
    }
    case 64: {
      const b = Buffer.alloc(9);
      b[0] = 0x81;
      b.writeBigUInt64BE(v, 1);
      return b;
    }
  }
}

export function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}

export function i32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}

export function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

export function i64le(v: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}

export function f32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return b;
}

/** A binary double (ZSET_2 scores, module DOUBLE): 8 bytes IEEE-754 LE. */
export function f64le(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b;
}

/**
 * How a string is written:
 * - 'raw': a length (in `lenWidth` form if given) then the bytes;
 * - 'int8' / 'int16' / 'int32': 0xC0 / 0xC1 / 0xC2 and the LE integer (the text must be one);
 * - 'int': the narrowest of those;
 * - 'lzf': 0xC3, compressed length, original length, LZF data (throws if it does not compress);
 * - 'auto': what Redis does: an integer form if the text is a canonical int32, LZF when longer
 *   than 20 bytes and compressible, raw otherwise.
 */
export type StrForm = 'raw' | 'int' | 'int8' | 'int16' | 'int32' | 'lzf' | 'auto';

const CANONICAL_INT = /^(0|-?[1-9]\d{0,9})$/;

export function str(s: Text | number, form: StrForm = 'raw', lenWidth?: LenWidth): Buffer {
  const data = textOf(s);
  switch (form) {
    case 'raw':
      return Buffer.concat([len(data.length, lenWidth), data]);
    case 'int':
    case 'int8':
    case 'int16':
    case 'int32': {
      const text = data.toString('latin1');
      if (!CANONICAL_INT.test(text)) throw new RangeError(`str: ${JSON.stringify(text)} is not an integer`);
      const v = Number(text);
      const width = form === 'int' ? (v >= -128 && v <= 127 ? 1 : v >= -32768 && v <= 32767 ? 2 : 4) : { int8: 1, int16: 2, int32: 4 }[form];
      const b = Buffer.alloc(1 + width);
      if (width === 1) {
        b[0] = 0xc0;
        b.writeInt8(v, 1);
      } else if (width === 2) {
        b[0] = 0xc1;
        b.writeInt16LE(v, 1);
      } else {
        b[0] = 0xc2;
        b.writeInt32LE(v, 1);
      }
      return b;
    }
    case 'lzf': {
      const c = lzfCompress(data);
      if (c === null) throw new RangeError(`str: ${data.length} bytes do not compress with LZF`);
      return Buffer.concat([Buffer.from([0xc3]), len(c.length, lenWidth), len(data.length, lenWidth), c]);
    }
    case 'auto': {
      const text = data.toString('latin1');
      if (CANONICAL_INT.test(text) && Number(text) >= -2147483648 && Number(text) <= 2147483647) return str(data, 'int');
      if (data.length > 20) {
        const c = lzfCompress(data);
        if (c !== null) return Buffer.concat([Buffer.from([0xc3]), len(c.length), len(data.length), c]);
      }
      return str(data, 'raw', lenWidth);
    }
  }
}

/**
 * A type 3 (ZSET) score (rdbSaveDoubleValue): NaN, +inf and -inf are the single bytes 253, 254
 * and 255; anything else is a length byte and ASCII text (a string is written as given).
 */
export function scoreString(score: number | string): Buffer {
  if (typeof score === 'number') {
    if (Number.isNaN(score)) return Buffer.from([253]);
    if (score === Infinity) return Buffer.from([254]);
    if (score === -Infinity) return Buffer.from([255]);
  }
  const text = Buffer.from(typeof score === 'number' ? String(score) : score, 'latin1');
  if (text.length > 252) throw new RangeError('scoreString: text longer than 252 bytes');
  return Buffer.concat([Buffer.from([text.length]), text]);
}

// ---------------------------------------------------------------------------------------------
// Type and opcode ids (written out here rather than imported: the tests pin the numbers)

export const T = {
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
  HASH_METADATA_PRE_GA: 22,
  HASH_2_VALKEY: 22,
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
  STREAM_LISTPACKS_4: 26,
  STREAM_LISTPACKS_5: 27,
} as const;

export const OP = {
  KEY_META: 243,
  SLOT_IMPORT: 243,
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

// ---------------------------------------------------------------------------------------------
// Values

/** A value as it follows the key name in the file; `payloadOf` adds the type byte in front. */
export interface RdbValue {
  type: number;
  body: Buffer;
}

export function payloadOf(v: RdbValue): Buffer {
  return Buffer.concat([Buffer.from([v.type]), v.body]);
}

/** Options shared by the writers of collections of RDB strings. */
export interface StrOpts {
  /** Form of each element string (default 'raw'). */
  form?: StrForm;
  /** Length form of the element count (default: smallest). */
  countWidth?: LenWidth;
}

function strings(items: readonly (Text | number)[], form: StrForm): Buffer[] {
  return items.map((i) => str(i, form));
}

/** Module values (module.c RM_Save*): opcode-tagged items, closed by opcode 0 (EOF). */
export type ModuleValue =
  | { sint: number | bigint }
  | { uint: number | bigint }
  | { float: number }
  | { double: number }
  | { string: Text };

export function moduleValues(values: readonly ModuleValue[]): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) {
    if ('sint' in v) parts.push(len(1), len(v.sint));
    else if ('uint' in v) parts.push(len(2), len(v.uint));
    else if ('float' in v) parts.push(len(3), f32le(v.float));
    else if ('double' in v) parts.push(len(4), f64le(v.double));
    else parts.push(len(5), str(v.string));
  }
  parts.push(len(0));
  return Buffer.concat(parts);
}

const MODULE_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** module.c moduleTypeEncodeId: nine 6-bit characters, then a 10-bit encoding version. */
export function moduleId(name: string, encver: number): bigint {
  if (name.length !== 9) throw new RangeError(`moduleId: ${JSON.stringify(name)} is not 9 characters`);
  let id = 0n;
  for (const ch of name) {
    const i = MODULE_CHARSET.indexOf(ch);
    if (i < 0) throw new RangeError(`moduleId: ${JSON.stringify(ch)} is not in the module charset`);
    id = (id << 6n) | BigInt(i);
  }
  return (id << 10n) | BigInt(encver & 1023);
}

const KEY_META_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** A KEY_META class spec: 4-character name in bits 31..8 (6 bits each), version in bits 7..3. */
export function keyMetaSpec(name: string, version: number): number {
  if (name.length !== 4) throw new RangeError(`keyMetaSpec: ${JSON.stringify(name)} is not 4 characters`);
  let spec = 0;
  for (const ch of name) {
    const i = KEY_META_CHARSET.indexOf(ch);
    if (i < 0) throw new RangeError(`keyMetaSpec: ${JSON.stringify(ch)} is not in the class-name charset`);
    spec = spec * 64 + i;
  }
  return ((spec << 8) | ((version & 31) << 3)) >>> 0;
}

export type Pair = readonly [Text | number, Text | number];
/** A hash field with an absolute expiry in unix ms (0 = none). */
export type FieldWithTtl = readonly [Text, Text, number];

export const V = {
  /** 0 STRING. */
  string(s: Text | number, form: StrForm = 'raw', lenWidth?: LenWidth): RdbValue {
    return { type: T.STRING, body: str(s, form, lenWidth) };
  },
  /** 1 LIST: len n, n strings. */
  list(items: readonly (Text | number)[], o: StrOpts = {}): RdbValue {
    return { type: T.LIST, body: Buffer.concat([len(items.length, o.countWidth), ...strings(items, o.form ?? 'raw')]) };
  },
  /** 2 SET: len n, n strings. */
  set(members: readonly (Text | number)[], o: StrOpts = {}): RdbValue {
    return { type: T.SET, body: Buffer.concat([len(members.length, o.countWidth), ...strings(members, o.form ?? 'raw')]) };
  },
  /** 3 ZSET: len n, n × (member, string score). */
  zset(pairs: readonly (readonly [Text | number, number | string])[], o: StrOpts = {}): RdbValue {
    const parts = [len(pairs.length, o.countWidth)];
    for (const [m, s] of pairs) parts.push(str(m, o.form ?? 'raw'), scoreString(s));
    return { type: T.ZSET, body: Buffer.concat(parts) };
  },
  /** 4 HASH: len n, n × (field, value). */
  hash(pairs: readonly Pair[], o: StrOpts = {}): RdbValue {
    const parts = [len(pairs.length, o.countWidth)];
    for (const [f, v] of pairs) parts.push(str(f, o.form ?? 'raw'), str(v, o.form ?? 'raw'));
    return { type: T.HASH, body: Buffer.concat(parts) };
  },
  /** 5 ZSET_2: len n, n × (member, binary double score). */
  zset2(pairs: readonly (readonly [Text | number, number])[], o: StrOpts = {}): RdbValue {
    const parts = [len(pairs.length, o.countWidth)];
    for (const [m, s] of pairs) parts.push(str(m, o.form ?? 'raw'), f64le(s));
    return { type: T.ZSET_2, body: Buffer.concat(parts) };
  },
  /** 7 MODULE_2: len (64-bit) module id, tagged values until opcode 0. */
  module2(id: bigint, values: readonly ModuleValue[]): RdbValue {
    return { type: T.MODULE_2, body: Buffer.concat([len(id), moduleValues(values)]) };
  },
  /** 9 HASH_ZIPMAP: a zipmap string. */
  hashZipmap(pairs: readonly ZipmapPair[], form: StrForm = 'raw'): RdbValue {
    return { type: T.HASH_ZIPMAP, body: str(encodeZipmap(pairs), form) };
  },
  /** 10 LIST_ZIPLIST: a ziplist string. */
  listZiplist(items: readonly EncodableItem[], form: StrForm = 'raw'): RdbValue {
    return { type: T.LIST_ZIPLIST, body: str(encodeZiplist(items), form) };
  },
  /** 11 SET_INTSET: an intset string. */
  setIntset(values: readonly bigint[] | readonly number[], form: StrForm = 'raw'): RdbValue {
    return { type: T.SET_INTSET, body: str(encodeIntset(values), form) };
  },
  /** 12 ZSET_ZIPLIST: a ziplist of member, score. */
  zsetZiplist(pairs: readonly (readonly [EncodableItem, EncodableItem])[], form: StrForm = 'raw'): RdbValue {
    return { type: T.ZSET_ZIPLIST, body: str(encodeZiplist(pairs.flat()), form) };
  },
  /** 13 HASH_ZIPLIST: a ziplist of field, value. */
  hashZiplist(pairs: readonly (readonly [EncodableItem, EncodableItem])[], form: StrForm = 'raw'): RdbValue {
    return { type: T.HASH_ZIPLIST, body: str(encodeZiplist(pairs.flat()), form) };
  },
  /** 14 LIST_QUICKLIST: len nodes, each a ziplist string (LZF-compressed when form is 'lzf'). */
  listQuicklist(nodes: readonly (readonly EncodableItem[])[], form: StrForm | ((i: number) => StrForm) = 'raw'): RdbValue {
    const f = typeof form === 'function' ? form : () => form;
    return { type: T.LIST_QUICKLIST, body: Buffer.concat([len(nodes.length), ...nodes.map((n, i) => str(encodeZiplist(n), f(i)))]) };
  },
  /** 16 HASH_LISTPACK: a listpack of field, value. */
  hashListpack(pairs: readonly (readonly [EncodableItem, EncodableItem])[], form: StrForm = 'raw'): RdbValue {
    return { type: T.HASH_LISTPACK, body: str(encodeListpack(pairs.flat()), form) };
  },
  /** 17 ZSET_LISTPACK: a listpack of member, score. */
  zsetListpack(pairs: readonly (readonly [EncodableItem, EncodableItem])[], form: StrForm = 'raw'): RdbValue {
    return { type: T.ZSET_LISTPACK, body: str(encodeListpack(pairs.flat()), form) };
  },
  /** 18 LIST_QUICKLIST_2: len nodes, each len(container) then a string: 1 PLAIN (one element), 2 PACKED (a listpack). */
  listQuicklist2(nodes: readonly ({ plain: Text } | { packed: readonly EncodableItem[] })[], form: StrForm = 'raw'): RdbValue {
    const parts = [len(nodes.length)];
    for (const n of nodes) {
      if ('plain' in n) parts.push(len(1), str(n.plain, form));
      else parts.push(len(2), str(encodeListpack(n.packed), form));
    }
    return { type: T.LIST_QUICKLIST_2, body: Buffer.concat(parts) };
  },
  /** 20 SET_LISTPACK: a listpack of members. */
  setListpack(members: readonly EncodableItem[], form: StrForm = 'raw'): RdbValue {
    return { type: T.SET_LISTPACK, body: str(encodeListpack(members), form) };
  },
  /** 22 under REDIS magic (7.4 RC HASH_METADATA_PRE_GA): len n, n × (len absolute ttl or 0, field, value). */
  hashMetadataPreGa(fields: readonly FieldWithTtl[]): RdbValue {
    const parts = [len(fields.length)];
    for (const [f, v, ttl] of fields) parts.push(len(ttl), str(f), str(v));
    return { type: T.HASH_METADATA_PRE_GA, body: Buffer.concat(parts) };
  },
  /** 22 under VALKEY magic (HASH_2): len n, n × (field, value, int64 LE expiry ms, -1 = none). */
  hash2Valkey(fields: readonly FieldWithTtl[]): RdbValue {
    const parts = [len(fields.length)];
    for (const [f, v, ttl] of fields) parts.push(str(f), str(v), i64le(ttl === 0 ? -1 : ttl));
    return { type: T.HASH_2_VALKEY, body: Buffer.concat(parts) };
  },
  /** 23 HASH_LISTPACK_EX_PRE_GA: a listpack of (field, value, ttl) triples, ttl absolute or 0. */
  hashListpackExPreGa(fields: readonly FieldWithTtl[], form: StrForm = 'raw'): RdbValue {
    return { type: T.HASH_LISTPACK_EX_PRE_GA, body: str(encodeListpack(fields.flat()), form) };
  },
  /**
   * 24 HASH_METADATA: int64 LE minExpire, len n, n × (len t, field, value) where t = 0 means no
   * TTL, else expireAt - minExpire + 1. minExpire defaults to the smallest field expiry.
   */
  hashMetadata(fields: readonly FieldWithTtl[], minExpire?: number): RdbValue {
    const ttls = fields.map((f) => f[2]).filter((t) => t !== 0);
    const min = minExpire ?? (ttls.length > 0 ? Math.min(...ttls) : 0);
    const parts = [i64le(min), len(fields.length)];
    for (const [f, v, ttl] of fields) parts.push(len(ttl === 0 ? 0 : ttl - min + 1), str(f), str(v));
    return { type: T.HASH_METADATA, body: Buffer.concat(parts) };
  },
  /** 25 HASH_LISTPACK_EX: int64 LE minExpire, then the type 23 listpack. */
  hashListpackEx(fields: readonly FieldWithTtl[], minExpire?: number, form: StrForm = 'raw'): RdbValue {
    const ttls = fields.map((f) => f[2]).filter((t) => t !== 0);
    const min = minExpire ?? (ttls.length > 0 ? Math.min(...ttls) : 0);
    return { type: T.HASH_LISTPACK_EX, body: Buffer.concat([i64le(min), str(encodeListpack(fields.flat()), form)]) };
  },
  /** 15 / 19 / 21 / 26 / 27: see streamValue. */
  stream(type: StreamType, spec: StreamSpec): RdbValue {
    return streamValue(type, spec);
  },
};

// ---------------------------------------------------------------------------------------------
// Streams (src/t_stream.c, rdbSaveObject)

export type StreamType = 15 | 19 | 21 | 26 | 27;

/** A stream id as 'ms-seq' text or { ms, seq }. */
export type SId = string | { ms: bigint | number; seq: bigint | number };

export function sid(id: SId): { ms: bigint; seq: bigint } {
  if (typeof id !== 'string') return { ms: BigInt(id.ms), seq: BigInt(id.seq) };
  const [ms, seq] = id.split('-');
  return { ms: BigInt(ms!), seq: BigInt(seq ?? '0') };
}

function sidCmp(a: SId, b: SId): number {
  const x = sid(a);
  const y = sid(b);
  return x.ms !== y.ms ? (x.ms < y.ms ? -1 : 1) : x.seq !== y.seq ? (x.seq < y.seq ? -1 : 1) : 0;
}

/** streamEncodeID: 16 raw bytes, ms and seq as u64 BE. */
export function rawStreamId(id: SId): Buffer {
  const { ms, seq } = sid(id);
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(ms, 0);
  b.writeBigUInt64BE(seq, 8);
  return b;
}

export interface StreamEntrySpec {
  id: SId;
  fields: readonly (readonly [Text | number, Text | number])[];
  /** Flag 1: deleted by XDEL, still in its node. */
  deleted?: boolean;
  /**
   * Flag 2 (SAMEFIELDS): values only, the field names are the master entry's. Default: used
   * whenever the field names equal the node's master fields, as Redis does.
   */
  sameFields?: boolean;
}

export interface StreamNodeSpec {
  /** The node's master id (default: its first entry's id). */
  master?: SId;
  /** The master entry's fields (default: the first entry's field names). */
  masterFields?: readonly (Text | number)[];
  entries: readonly StreamEntrySpec[];
  /** Form of the node's listpack string (Redis LZF-compresses big nodes). Default 'raw'. */
  form?: StrForm;
}

export interface StreamPelSpec {
  id: SId;
  deliveryTimeMs: number | bigint;
  deliveryCount: number;
}

export interface StreamConsumerSpec {
  name: Text;
  seenTimeMs: number | bigint;
  /** Type 21+ only (default: seenTimeMs). */
  activeTimeMs?: number | bigint;
  /** Ids this consumer owns; each must be in the group's PEL. */
  pending: readonly SId[];
}

export interface StreamGroupSpec {
  name: Text;
  lastId: SId;
  /** Type 19+ (default 0). */
  entriesRead?: number | bigint;
  pel: readonly StreamPelSpec[];
  consumers: readonly StreamConsumerSpec[];
  /** Type 27 only: the group's NACKed ids. */
  nacked?: readonly SId[];
}

export interface StreamIdmpSpec {
  durationSeconds: number | bigint;
  maxEntries: number | bigint;
  producers: readonly { pid: Text; entries: readonly { iid: Text; id: SId }[] }[];
  iidsAdded: number | bigint;
  iidsDuplicates: number | bigint;
}

export interface StreamSpec {
  nodes: readonly StreamNodeSpec[];
  /** Defaults below are what a server that wrote these nodes would hold. */
  length?: number | bigint;
  lastId?: SId;
  firstId?: SId;
  maxDeletedId?: SId;
  entriesAdded?: number | bigint;
  groups?: readonly StreamGroupSpec[];
  /** Types 26 and 27: the IDMP section (default: empty). */
  idmp?: StreamIdmpSpec;
}

/** What the defaults of a StreamSpec come to (also what the parser should report). */
export function streamDefaults(spec: StreamSpec): { length: bigint; lastId: SId; firstId: SId; maxDeletedId: SId; entriesAdded: bigint } {
  const all = spec.nodes.flatMap((n) => n.entries);
  const live = all.filter((e) => !e.deleted);
  const deleted = all.filter((e) => e.deleted);
  const max = (ids: SId[]): SId => ids.reduce<SId>((m, id) => (sidCmp(id, m) > 0 ? id : m), '0-0');
  return {
    length: BigInt(spec.length ?? live.length),
    lastId: spec.lastId ?? max(all.map((e) => e.id)),
    firstId: spec.firstId ?? live[0]?.id ?? '0-0',
    maxDeletedId: spec.maxDeletedId ?? max(deleted.map((e) => e.id)),
    entriesAdded: BigInt(spec.entriesAdded ?? all.length),
  };
}

/**
 * A stream node listpack (t_stream.c streamAppendItem): the master entry
 * `count, deleted, nfields, field..., 0`, then per entry `flags, ms-delta, seq-delta`,
 * `nfields, field, value...` or (SAMEFIELDS) `value...`, and the entry's lp-count.
 */
export function streamNodeListpack(node: StreamNodeSpec): Buffer {
  const first = node.entries[0];
  if (!first) throw new RangeError('streamNodeListpack: a node needs at least one entry');
  const master = sid(node.master ?? first.id);
  const masterFields = (node.masterFields ?? first.fields.map((f) => f[0])).map(textOf);
  const live = node.entries.filter((e) => !e.deleted).length;
  const items: EncodableItem[] = [live, node.entries.length - live, masterFields.length, ...masterFields, 0];
  for (const e of node.entries) {
    const id = sid(e.id);
    const names = e.fields.map((f) => textOf(f[0]));
    const same =
      e.sameFields ?? (names.length === masterFields.length && names.every((n, i) => n.equals(masterFields[i]!)));
    if (same && (names.length !== masterFields.length || !names.every((n, i) => n.equals(masterFields[i]!)))) {
      throw new RangeError('streamNodeListpack: a SAMEFIELDS entry must have the master fields');
    }
    const flags = (e.deleted ? 1 : 0) | (same ? 2 : 0);
    items.push(flags, id.ms - master.ms, id.seq - master.seq);
    const values = e.fields.map((f) => textOf(f[1]));
    if (same) {
      items.push(...values);
      items.push(values.length + 3);
    } else {
      items.push(names.length);
      for (let i = 0; i < names.length; i++) items.push(names[i]!, values[i]!);
      items.push(2 * names.length + 4);
    }
  }
  return encodeListpack(items);
}

export function streamValue(type: StreamType, spec: StreamSpec): RdbValue {
  const d = streamDefaults(spec);
  const idLens = (id: SId): Buffer[] => {
    const { ms, seq } = sid(id);
    return [len(ms), len(seq)];
  };
  const parts: Buffer[] = [len(spec.nodes.length)];
  for (const node of spec.nodes) {
    const first = node.entries[0];
    if (!first) throw new RangeError('streamValue: empty node');
    parts.push(str(rawStreamId(node.master ?? first.id)), str(streamNodeListpack(node), node.form ?? 'raw'));
  }
  parts.push(len(d.length), ...idLens(d.lastId));
  if (type !== 15) parts.push(...idLens(d.firstId), ...idLens(d.maxDeletedId), len(d.entriesAdded));
  const groups = spec.groups ?? [];
  parts.push(len(groups.length));
  for (const g of groups) {
    parts.push(str(g.name), ...idLens(g.lastId));
    if (type !== 15) parts.push(len(g.entriesRead ?? 0));
    parts.push(len(g.pel.length));
    for (const p of g.pel) parts.push(rawStreamId(p.id), i64le(p.deliveryTimeMs), len(p.deliveryCount));
    parts.push(len(g.consumers.length));
    for (const c of g.consumers) {
      parts.push(str(c.name), i64le(c.seenTimeMs));
      if (type >= 21) parts.push(i64le(c.activeTimeMs ?? c.seenTimeMs));
      parts.push(len(c.pending.length), ...c.pending.map(rawStreamId));
    }
    if (type === 27) {
      const nacked = g.nacked ?? [];
      parts.push(len(nacked.length), ...nacked.map(rawStreamId));
    }
  }
  if (type >= 26) {
    const idmp = spec.idmp ?? { durationSeconds: 0, maxEntries: 0, producers: [], iidsAdded: 0, iidsDuplicates: 0 };
    parts.push(len(idmp.durationSeconds), len(idmp.maxEntries), len(idmp.producers.length));
    for (const p of idmp.producers) {
      parts.push(str(p.pid), len(p.entries.length));
      for (const e of p.entries) parts.push(str(e.iid), ...idLens(e.id));
    }
    parts.push(len(idmp.iidsAdded), len(idmp.iidsDuplicates));
  }
  return { type, body: Buffer.concat(parts) };
}

// ---------------------------------------------------------------------------------------------
// The file

export interface KeyOptions {
  /** EXPIRETIME_MS (252): int64 LE unix ms. */
  expireMs?: number;
  /** EXPIRETIME (253): int32 LE unix seconds. */
  expireSeconds?: number;
  /** IDLE (248): len, LRU idle seconds. */
  idle?: number;
  /** FREQ (249): 1 byte LFU counter. */
  freq?: number;
  /** KEY_META (243, REDIS >= 13), written right before the type byte. */
  keyMeta?: readonly KeyMetaClass[];
  /** Form of the key name string (default 'raw'). */
  keyForm?: StrForm;
}

export interface KeyMetaClass {
  name: string;
  version: number;
  values: readonly ModuleValue[];
}

export class RdbWriter {
  private readonly parts: Buffer[] = [];

  constructor(
    readonly magic: Magic,
    readonly version: number,
  ) {
    this.parts.push(RdbWriter.header(magic, version));
  }

  /** 'REDIS' + 4 digits, or 'VALKEY' + 3 digits. */
  static header(magic: Magic, version: number): Buffer {
    return Buffer.from(magic === 'REDIS' ? `REDIS${String(version).padStart(4, '0')}` : `VALKEY${String(version).padStart(3, '0')}`, 'latin1');
  }

  /** Bytes written so far. */
  get size(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }

  raw(...chunks: Buffer[]): this {
    this.parts.push(...chunks);
    return this;
  }

  byte(b: number): this {
    return this.raw(u8(b));
  }

  len(n: number | bigint, width?: LenWidth): this {
    return this.raw(len(n, width));
  }

  str(s: Text | number, form: StrForm = 'raw', width?: LenWidth): this {
    return this.raw(str(s, form, width));
  }

  aux(name: Text, value: Text | number, form: StrForm = 'raw'): this {
    return this.raw(u8(OP.AUX), str(name), str(value, form));
  }

  selectDb(db: number, width?: LenWidth): this {
    return this.raw(u8(OP.SELECTDB), len(db, width));
  }

  resizeDb(keys: number, expires: number): this {
    return this.raw(u8(OP.RESIZEDB), len(keys), len(expires));
  }

  expireSeconds(unixSeconds: number): this {
    return this.raw(u8(OP.EXPIRETIME), i32le(unixSeconds));
  }

  expireMs(unixMs: number): this {
    return this.raw(u8(OP.EXPIRETIME_MS), i64le(unixMs));
  }

  idle(seconds: number): this {
    return this.raw(u8(OP.IDLE), len(seconds));
  }

  freq(counter: number): this {
    return this.raw(u8(OP.FREQ), u8(counter));
  }

  slotInfo(slot: number, keys: number, expires: number): this {
    return this.raw(u8(OP.SLOT_INFO), len(slot), len(keys), len(expires));
  }

  function2(code: Text): this {
    return this.raw(u8(OP.FUNCTION2), str(code));
  }

  /** MODULE_AUX (247): len module id, len when-opcode (2 = UINT), len when, tagged values. */
  moduleAux(id: bigint, when: 1 | 2, values: readonly ModuleValue[], whenOpcode = 2): this {
    return this.raw(u8(OP.MODULE_AUX), len(id), len(whenOpcode), len(when), moduleValues(values));
  }

  /** KEY_META (243, REDIS >= 13): len classes, per class a u32 LE spec and tagged values. */
  keyMeta(classes: readonly KeyMetaClass[]): this {
    this.raw(u8(OP.KEY_META), len(classes.length));
    for (const c of classes) this.raw(u32le(keyMetaSpec(c.name, c.version)), moduleValues(c.values));
    return this;
  }

  /** SLOT_IMPORT (243, VALKEY): job name, len ranges, ranges × (len start, len end). */
  slotImport(name: Text, ranges: readonly (readonly [number, number])[]): this {
    this.raw(u8(OP.SLOT_IMPORT), str(name), len(ranges.length));
    for (const [a, b] of ranges) this.raw(len(a), len(b));
    return this;
  }

  /** A key record: prefix opcodes, then the type byte, the key name and the value. */
  key(name: Text | number, value: RdbValue, o: KeyOptions = {}): this {
    if (o.expireSeconds !== undefined) this.expireSeconds(o.expireSeconds);
    if (o.expireMs !== undefined) this.expireMs(o.expireMs);
    if (o.idle !== undefined) this.idle(o.idle);
    if (o.freq !== undefined) this.freq(o.freq);
    if (o.keyMeta !== undefined) this.keyMeta(o.keyMeta);
    return this.raw(u8(value.type), str(name, o.keyForm ?? 'raw'), value.body);
  }

  /** 0xFF, then (version >= 5, or any VALKEY file) the CRC64 of everything so far, LE. */
  finish(o: { zeroChecksum?: boolean } = {}): Buffer {
    const body = Buffer.concat([...this.parts, u8(OP.EOF)]);
    if (this.magic === 'REDIS' && this.version < 5) return body;
    const crc = Buffer.alloc(8);
    if (!o.zeroChecksum) crc.writeBigUInt64LE(crc64(body));
    return Buffer.concat([body, crc]);
  }
}
