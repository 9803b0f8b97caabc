import { encodeCommand } from '../../resp/encode.js';
import type { Lane } from '../../target/writer.js';
import { BatchChannel, type RefusalPolicy } from '../batch-channel.js';
import { formatCheckpoint } from '../checkpoints.js';
import type { StreamUnit } from './front-end.js';
import type { StreamBackend } from './sequencer.js';

export interface StandaloneCheckpoint {
  /** Where the checkpoint lives on the target (db 0). */
  key: Buffer;
  /** The replication id the offsets belong to (changes after a failover). */
  replid(): string | null;
}

/**
 * A standalone target: the stream of one source shard goes through one lane (one connection),
 * so the target sees the source's order, in batches of at most one in flight (BatchChannel).
 * With a checkpoint (exactly-once), each batch also sets `key` to where the stream stands after
 * its last unit, in the same MULTI ... EXEC: the checkpoint read back after a crash says exactly
 * which writes are on the target.
 */
export class StandaloneStreamBackend implements StreamBackend {
  private readonly channel: BatchChannel<StreamUnit>;

  constructor(lane: Lane, policy: RefusalPolicy, checkpoint: StandaloneCheckpoint | null) {
    this.channel = new BatchChannel<StreamUnit>({
      transport: (commands, done) => lane.sendBatch(commands, done),
      policy,
      checkpoint: checkpoint
        ? (unit) => {
            const replid = checkpoint.replid();
            return replid === null ? null : { db: 0, encoded: encodeCommand(['SET', checkpoint.key, formatCheckpoint(replid, unit.endOffset, unit.dbAfter)]) };
          }
        : undefined,
    });
  }

  dispatch(unit: StreamUnit, done: () => void): void {
    this.channel.add({ writes: unit.writes, done, tag: unit });
  }

  settle(): Promise<void> {
    return this.channel.settle();
  }

  abandon(): void {
    this.channel.abandon();
  }
}
