import type { Reply } from '../resp/reply-decoder.js';

/** One command of a batch, and the database it must run in (standalone targets; 0 on a cluster). */
export interface BatchCommand {
  db: number;
  encoded: Buffer;
  /** Commands in `encoded` (a run forwarded as received); 1 when absent. */
  count?: number;
}

/**
 * The target's verdict on one batch (MULTI ... EXEC). A batch is all or nothing: either it was
 * applied, each command with its own reply (a ReplyError for a command that failed when it ran,
 * such as WRONGTYPE: the others still applied), or nothing of it was.
 */
export type BatchReply =
  /** `replies`: one per command, a run's commands each counted (so a run of n takes n places). */
  | { applied: true; replies: Reply[] }
  | {
      applied: false;
      /** Why nothing was applied: the refusal of the first command refused when queued, else EXEC's error. */
      error: string;
      /** Index of the first command refused when queued (OOM, unknown command...), when one was; counted like `replies`. */
      refusedAt: number | null;
      /** The connection failed: the caller has already been told through its connection-lost handler. */
      lost: boolean;
    };

export type BatchDone = (reply: BatchReply) => void;
