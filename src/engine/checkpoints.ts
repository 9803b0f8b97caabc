import { slotTag } from '../common/slots.js';

/**
 * Checkpoints kept on the target: "the target holds every write of history `replid` up to
 * `offset`, and the stream had selected `db` there" — written in the same MULTI/EXEC as the
 * writes they cover, so that resuming from one neither skips nor repeats a write.
 *
 * Key names, under the migration's checkpoint name N (`__ferry:checkpoint:<task id>` for a task,
 * `--checkpoint` on the command line), per source shard i (shards are ordered by slot, so the
 * index survives a failover):
 * - standalone target: `N:i` in db 0;
 * - cluster target: `N:i:slot:{tag}` per slot (tag: a short hash tag of that slot) and the floor
 *   `N:i:floor`, the offset up to which every slot is applied (where a resume starts).
 */
/** Where every checkpoint name lives: its keys are Ferry's bookkeeping, not the user's data. */
export const CHECKPOINT_KEY_PREFIX = '__ferry:checkpoint:';

export interface CheckpointValue {
  replid: string;
  appliedOffset: number;
  db: number;
}

/** The checkpoint value: `<replid> <applied offset> <source db>`. */
export function formatCheckpoint(replid: string, offset: number, db: number): string {
  return `${replid} ${offset} ${db}`;
}

export function parseCheckpoint(text: string): CheckpointValue | null {
  const m = /^([0-9a-f]{40}) (\d+) (\d+)$/.exec(text.trim());
  return m ? { replid: m[1]!, appliedOffset: Number(m[2]), db: Number(m[3]) } : null;
}

/**
 * A checkpoint name is used in key names and in `SCAN MATCH` patterns: glob characters would
 * make the scan find other migrations' keys (or miss its own), and control characters make
 * unreadable key names. Any other text, non-ASCII included, is kept as UTF-8.
 */
export function checkNameOfCheckpoint(name: string): void {
  if (name.length === 0) throw new Error('the checkpoint name is empty');
  if (/[*?[\]\\]/.test(name)) throw new Error(`invalid checkpoint name "${name}": it must not contain * ? [ ] or \\ (it is used in a SCAN MATCH pattern)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\s]/.test(name)) throw new Error('invalid checkpoint name: it must not contain spaces or control characters');
}

/** The checkpoint key prefix of shard `index` under `name`. */
export function shardCheckpointKey(name: string, index: number): Buffer {
  return Buffer.from(`${name}:${index}`, 'utf8');
}

export function clusterSlotKey(prefix: Buffer, slot: number): Buffer {
  return Buffer.concat([prefix, Buffer.from(`:slot:{${slotTag(slot)}}`, 'latin1')]);
}

export function clusterFloorKey(prefix: Buffer): Buffer {
  return Buffer.concat([prefix, Buffer.from(':floor', 'latin1')]);
}

/** The SCAN MATCH pattern of every slot key of a shard's prefix (the name holds no glob characters). */
export function clusterSlotPattern(prefix: Buffer): Buffer {
  return Buffer.concat([prefix, Buffer.from(':slot:*', 'latin1')]);
}

/** The SCAN MATCH pattern of every checkpoint key under `name` (the name holds no glob characters). */
export function checkpointPattern(name: string): Buffer {
  return Buffer.from(`${name}:*`, 'utf8');
}
