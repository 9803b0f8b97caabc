import type { Logger } from 'pino';
import { slotOf } from '../common/slots.js';
import { encodeCommand } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import type { DbMapper, DbPlacement } from './db-map.js';
import type { OpenedTarget } from './open-target.js';

/** Slot ranges of a cluster source shard, or null for a standalone source (every key is its). */
export type ShardSlots = readonly (readonly [number, number])[] | null;

const SCAN_COUNT = 1000;
const CHECKPOINT_PREFIX = Buffer.from('__ferry:', 'latin1');

/**
 * What to run before a source shard resyncs in full over writes of its own (a link lost beyond
 * the backlog, a restarted task whose checkpoint is gone): remove every key that shard can have
 * written, so that keys the source deleted meanwhile do not survive the new snapshot. Those are
 * the keys of the target dbs its source dbs map to — starting with the db's prefix when it has
 * one, and hashing to the shard's slots when the source is a cluster (on the key without the
 * prefix). Keys of other sources merged into the same place, or of other shards, stay; so do
 * Ferry's own `__ferry:` keys (checkpoints of this and other migrations). Keys go with UNLINK in
 * pipelined pages of SCAN, in bounded memory.
 */
export function shardPurge(target: OpenedTarget, dbs: DbMapper, sourceDbs: readonly number[], slots: ShardSlots, logger: Logger, shard: string): () => Promise<void> {
  const places = new Map<string, DbPlacement>();
  for (const db of new Set([0, ...sourceDbs])) {
    const p = dbs.placement(db);
    if (p) places.set(`${p.db}/${p.prefix?.toString('hex') ?? ''}`, p);
  }
  const inShard = slots === null ? null : slotFilter(slots);
  return async () => {
    let removed = 0;
    for (const place of places.values()) {
      const wanted = (key: Buffer): boolean => {
        if (startsWith(key, CHECKPOINT_PREFIX)) return false;
        if (place.prefix && !startsWith(key, place.prefix)) return false;
        return inShard === null || inShard(slotOf(place.prefix ? key.subarray(place.prefix.length) : key));
      };
      const match = place.prefix ? Buffer.concat([globEscape(place.prefix), Buffer.from('*', 'latin1')]) : null;
      removed += target.kind === 'standalone' ? await purgeStandalone(target, place.db, match, wanted) : await purgeCluster(target, match, wanted);
    }
    logger.warn({ shard, removed }, 'purged what this shard had written before the full resync');
  };
}

async function purgeStandalone(target: Extract<OpenedTarget, { kind: 'standalone' }>, db: number, match: Buffer | null, wanted: (key: Buffer) => boolean): Promise<number> {
  const lane = target.writer.lanes[0]!;
  let removed = 0;
  let cursor = '0';
  do {
    const [next, keys] = page(await lane.call(db, match ? ['SCAN', cursor, 'MATCH', match, 'COUNT', SCAN_COUNT] : ['SCAN', cursor, 'COUNT', SCAN_COUNT]));
    cursor = next;
    const doomed = keys.filter(wanted);
    if (doomed.length > 0) removed += Number(await lane.call(db, ['UNLINK', ...doomed]));
  } while (cursor !== '0');
  return removed;
}

async function purgeCluster(target: Extract<OpenedTarget, { kind: 'cluster' }>, match: Buffer | null, wanted: (key: Buffer) => boolean): Promise<number> {
  const router = target.router;
  let removed = 0;
  for (const master of router.masters()) {
    let cursor = '0';
    do {
      const reply = await new Promise<Reply | undefined>((resolve, reject) =>
        router.sendToMaster(master, encodeCommand(match ? ['SCAN', cursor, 'MATCH', match, 'COUNT', SCAN_COUNT] : ['SCAN', cursor, 'COUNT', SCAN_COUNT]), (e, r) => (e ? reject(new Error(e)) : resolve(r))),
      );
      const [next, keys] = page(reply);
      cursor = next;
      const counts = await Promise.all(keys.filter(wanted).map((key) => router.call(slotOf(key), ['UNLINK', key])));
      removed += counts.reduce<number>((n, c) => n + Number(c), 0);
    } while (cursor !== '0');
  }
  return removed;
}

function page(reply: Reply | undefined): [string, Buffer[]] {
  if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1])) throw new Error('unexpected SCAN reply while purging');
  return [reply[0].toString('latin1'), reply[1].filter((k): k is Buffer => Buffer.isBuffer(k))];
}

function slotFilter(ranges: readonly (readonly [number, number])[]): (slot: number) => boolean {
  const owned = new Uint8Array(16384);
  for (const [a, b] of ranges) owned.fill(1, a, b + 1);
  return (slot) => owned[slot] === 1;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.subarray(0, prefix.length).equals(prefix);
}

/** A literal for SCAN MATCH: glob characters escaped. */
function globEscape(bytes: Buffer): Buffer {
  const out: number[] = [];
  for (const b of bytes) {
    if (b === 0x2a || b === 0x3f || b === 0x5b || b === 0x5d || b === 0x5c) out.push(0x5c);
    out.push(b);
  }
  return Buffer.from(out);
}
