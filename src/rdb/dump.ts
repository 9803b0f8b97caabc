import { Crc64 } from './crc64.js';
import { RdbType } from './types.js';
import type { RdbMagic } from './parser.js';
import type { WholeKeyEntry } from './entries.js';

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

/** Reused by encodeRestore: one CRC object for every key. */
const restoreCrc = new Crc64();

/**
 * `RESTORE key ttl <payload> ...options` in RESP, built in one allocation: the payload (type
 * byte, value, version, CRC64) is written straight into the command, so a key's value is
 * copied once on its way from the snapshot to the target's socket.
 */
export function encodeRestore(entry: WholeKeyEntry, ttl: number, rdbVersion: number, options: readonly string[], keyPrefix: Buffer | null = null): Buffer {
  const ttlText = String(ttl);
  const payloadLength = 1 + entry.valueLength + 10;
  const prefixLength = keyPrefix?.length ?? 0;
  const head = `*${4 + options.length}\r\n$7\r\nRESTORE\r\n$${entry.keyLength + prefixLength}\r\n`;
  const mid = `\r\n$${ttlText.length}\r\n${ttlText}\r\n$${payloadLength}\r\n`;
  let tail = '\r\n';
  for (const o of options) tail += `$${o.length}\r\n${o}\r\n`;
  const out = Buffer.allocUnsafe(head.length + prefixLength + entry.keyLength + mid.length + payloadLength + tail.length);
  let at = out.write(head, 0, 'latin1');
  if (keyPrefix) at += keyPrefix.copy(out, at);
  at += entry.copyKey(out, at);
  at += out.write(mid, at, 'latin1');
  const payloadStart = at;
  out[at++] = entry.rdbType;
  at += entry.copyValue(out, at);
  out.writeUInt16LE(rdbVersion, at);
  at += 2;
  restoreCrc.reset();
  restoreCrc.update(out, payloadStart, at);
  restoreCrc.writeLE(out, at);
  out.write(tail, at + 8, 'latin1');
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
