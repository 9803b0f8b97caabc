import { Crc64 } from './crc64.js';
import { RdbType } from './types.js';
import type { RdbMagic } from './parser.js';

/**
 * A DUMP/RESTORE payload: type byte + value bytes (as in the RDB) + u16 LE RDB version +
 * u64 LE CRC64 of everything before it. The version is only checked against the target's own,
 * so a payload may be labelled with the target's version whenever its type id is one the
 * target knows (see restorableOn).
 */
export function dumpPayload(body: Buffer, rdbVersion: number): Buffer {
  const out = Buffer.allocUnsafe(body.length + 10);
  body.copy(out, 0);
  out.writeUInt16LE(rdbVersion, body.length);
  const crc = new Crc64();
  crc.update(out, 0, body.length + 2);
  crc.digestLE().copy(out, body.length + 2);
  return out;
}

/** The first RDB version that knows each type id (Redis numbering). */
const FIRST_RDB_VERSION: Record<number, number> = {
  [RdbType.STRING]: 1,
  [RdbType.LIST]: 1,
  [RdbType.SET]: 1,
  [RdbType.ZSET]: 1,
  [RdbType.HASH]: 1,
  [RdbType.ZSET_2]: 8,
  [RdbType.MODULE_2]: 8,
  [RdbType.HASH_ZIPMAP]: 2,
  [RdbType.LIST_ZIPLIST]: 2,
  [RdbType.SET_INTSET]: 2,
  [RdbType.ZSET_ZIPLIST]: 2,
  [RdbType.HASH_ZIPLIST]: 6,
  [RdbType.LIST_QUICKLIST]: 7,
  [RdbType.STREAM_LISTPACKS]: 9,
  [RdbType.HASH_LISTPACK]: 10,
  [RdbType.ZSET_LISTPACK]: 10,
  [RdbType.LIST_QUICKLIST_2]: 10,
  [RdbType.STREAM_LISTPACKS_2]: 10,
  [RdbType.SET_LISTPACK]: 11,
  [RdbType.STREAM_LISTPACKS_3]: 11,
  [RdbType.HASH_METADATA]: 12,
  [RdbType.HASH_LISTPACK_EX]: 12,
  [RdbType.STREAM_LISTPACKS_4]: 13,
  [RdbType.STREAM_LISTPACKS_5]: 14,
};

/** What a target understands: its RDB version and whether it is Valkey 9+ (VALKEY magic). */
export interface TargetFormat {
  rdbVersion: number;
  magic: RdbMagic;
}

/**
 * Can a value of this type, read from a file with this magic, be RESTOREd on the target?
 * Types 22/23 are 7.4 release-candidate formats (Redis) or HASH_2 (Valkey): never restorable
 * across the two families, so they are always rewritten as commands.
 */
export function restorableOn(type: number, sourceMagic: RdbMagic, target: TargetFormat): boolean {
  if (sourceMagic === 'VALKEY' || target.magic === 'VALKEY') {
    if (sourceMagic !== target.magic) return type <= RdbType.STREAM_LISTPACKS_3 && target.rdbVersion >= (FIRST_RDB_VERSION[type] ?? Infinity); // the shared pre-fork types
    return true;
  }
  const first = FIRST_RDB_VERSION[type];
  return first !== undefined && first <= target.rdbVersion;
}

/** RDB version written by a server version (Redis numbering; Valkey 9+ writes 80). */
export function rdbVersionOfServer(version: [number, number, number], valkey: boolean): TargetFormat {
  const [major, minor] = version;
  if (valkey && major >= 9) return { rdbVersion: 80, magic: 'VALKEY' };
  if (valkey) return { rdbVersion: 11, magic: 'REDIS' };
  const v = major * 100 + minor;
  const rdbVersion =
    v >= 806 ? 13 : v >= 704 ? 12 : v >= 702 ? 11 : v >= 700 ? 10 : v >= 500 ? 9 : v >= 400 ? 8 : v >= 302 ? 7 : v >= 206 ? 6 : v >= 204 ? 2 : 1;
  return { rdbVersion, magic: 'REDIS' };
}
