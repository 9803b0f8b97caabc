/**
 * What a source that refuses replication still lets Ferry do, found by trying each command
 * once on a key that cannot exist (nothing is written): managed services and proxies rename
 * or forbid commands one by one, and their version strings do not say which.
 */
import { ReplyError, type Reply } from '../../resp/reply-decoder.js';
import type { RedisConnection } from '../../resp/connection.js';

export interface SourceCaps {
  version: [number, number, number];
  /** Valkey 9+ writes VALKEY-magic payloads (RDB 80). */
  valkey: boolean;
  /** SCAN: without it the keyspace cannot be listed and scan mode cannot run. */
  scan: boolean;
  /** DUMP: whole keys as RESTORE payloads; else every key is read with type commands. */
  dump: boolean;
  /** PEXPIRETIME (7.0+): absolute TTLs in the source's clock; else PTTL plus Ferry's clock. */
  pexpiretime: boolean;
  /** MEMORY USAGE: the size guard before a DUMP; else every key is DUMPed whole. */
  memoryUsage: boolean;
  /** FUNCTION DUMP (7.0+). */
  functionDump: boolean;
  /** INFO commandstats: detects FLUSHDB, FLUSHALL, SWAPDB and FUNCTION changes (no per-key events). */
  commandStats: boolean;
  /** HPEXPIRETIME (7.4+): hash fields may carry TTLs. */
  hashFieldTtl: boolean;
  /** XRANGE with an exclusive start `(id` (6.2+). */
  exclusiveRange: boolean;
  /** EVAL on a standalone server: whole keys are read a batch per script call (fewer round trips). */
  batchScript: boolean;
}

const PROBE_KEY = '__ferry_probe__:{does-not-exist}';

/** An error reply that means "you cannot use this command here" (vs. a broken connection). */
export function isRefusal(reply: Reply | Error): reply is ReplyError {
  return reply instanceof ReplyError;
}

async function allowed(c: RedisConnection, args: (string | number)[]): Promise<boolean> {
  try {
    await c.call(args);
    return true;
  } catch (e) {
    if (e instanceof ReplyError) return false;
    throw e;
  }
}

export function parseVersion(info: string): [number, number, number] {
  const text = /^(?:valkey_version|redis_version):(.*)$/m.exec(info)?.[1]?.trim() ?? '0.0.0';
  const parts = text.split('.').map((p) => Number.parseInt(p, 10) || 0);
  return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
}

export async function probeSource(c: RedisConnection): Promise<SourceCaps> {
  let version: [number, number, number] = [0, 0, 0];
  let valkey = false;
  try {
    const info = await c.call(['INFO', 'server']);
    if (Buffer.isBuffer(info)) {
      const text = info.toString('latin1');
      version = parseVersion(text);
      valkey = /^valkey_version:|^server_name:valkey/m.test(text);
    }
  } catch (e) {
    if (!(e instanceof ReplyError)) throw e;
  }
  const [scan, dump, pexpiretime, memoryUsage, commandStats, hashFieldTtl, script, clusterInfo] = await Promise.all([
    allowed(c, ['SCAN', '0', 'COUNT', 1]),
    allowed(c, ['DUMP', PROBE_KEY]),
    allowed(c, ['PEXPIRETIME', PROBE_KEY]),
    allowed(c, ['MEMORY', 'USAGE', PROBE_KEY]),
    allowed(c, ['INFO', 'commandstats']),
    allowed(c, ['HPEXPIRETIME', PROBE_KEY, 'FIELDS', 1, 'f']),
    allowed(c, ['EVAL', 'return 1', 0]),
    c.call(['INFO', 'cluster']).catch(() => null),
  ]);
  // A cluster node's script may only touch keys of one slot: batches there would be refused.
  const clustered = Buffer.isBuffer(clusterInfo) && /^cluster_enabled:1/m.test(clusterInfo.toString('latin1'));
  const batchScript = script && !clustered && dump && memoryUsage && pexpiretime;
  const functionDump = version[0] >= 7 && (await allowed(c, ['FUNCTION', 'DUMP']));
  const exclusiveRange = version[0] > 6 || (version[0] === 6 && version[1] >= 2);
  return { version, valkey, scan, dump, pexpiretime, memoryUsage, functionDump, commandStats, hashFieldTtl, exclusiveRange, batchScript };
}
