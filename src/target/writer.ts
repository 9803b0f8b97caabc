import { encodeCommand, type Arg } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import type { Endpoint } from '../common/endpoint.js';
import { RedisConnection, RedisConnectionError } from '../resp/connection.js';
import type { BatchCommand, BatchDone } from './batch.js';

const MULTI = encodeCommand(['MULTI']);
const EXEC = encodeCommand(['EXEC']);
import { rdbVersionOfServer, type TargetFormat } from '../rdb/dump.js';

/** Called with the target's verdict on one command; `error` is null on success. */
export type ReplyHandler = (error: string | null, reply: Reply | undefined) => void;

/** What the writer learned about the target when it connected. */
export interface TargetInfo {
  version: [number, number, number];
  valkey: boolean;
  format: TargetFormat;
  /** RESTORE ... ABSTTL exists from Redis 5.0. */
  supportsAbsTtl: boolean;
}

/**
 * One pipelined connection plus the database it has selected, so that SELECT is sent only
 * when a command's database differs from the previous one on the same connection.
 */
export class Lane {
  private selectedDb = -1;

  constructor(
    readonly connection: RedisConnection,
    /** The connection is gone: what it carried may or may not have been applied. */
    private readonly onConnectionLost: (error: Error) => void,
  ) {}

  /** Forget the selected database (the next command selects its own). */
  forgetDb(): void {
    this.selectedDb = -1;
  }

  private select(db: number): void {
    if (db === this.selectedDb) return;
    this.connection.send(encodeCommand(['SELECT', db]), (reply) => {
      if (reply instanceof RedisConnectionError) this.onConnectionLost(reply);
      else if (reply instanceof Error) this.onConnectionLost(new Error(`target refused SELECT ${db}: ${reply.message}`));
    });
    this.selectedDb = db;
  }

  send(db: number, args: readonly Arg[], onReply?: ReplyHandler): void {
    this.sendEncoded(db, encodeCommand(args), onReply);
  }

  /** Like send, for a command already in RESP form (forwarded as the source sent it). */
  sendEncoded(db: number, encoded: Buffer, onReply?: ReplyHandler): void {
    this.select(db);
    this.sendRaw(encoded, onReply);
  }

  /**
   * Sends `commands` as one MULTI ... EXEC, with the SELECTs they need inside it, and leaves the
   * connection in the database it was in before, whether the batch is applied or aborted (so
   * that commands sent behind it, before its reply, run where they were meant to).
   */
  sendBatch(commands: readonly BatchCommand[], done: BatchDone): void {
    if (commands.length === 0) {
      done({ applied: true, replies: [] });
      return;
    }
    if (this.selectedDb === -1) this.select(commands[0]!.db);
    const startDb = this.selectedDb;
    // The whole batch is one pending entry and as few writes as possible: commands that lie
    // next to each other in memory (a stream run, consecutive commands of one receive chunk)
    // go out as one view of that memory.
    const segments: Buffer[] = [MULTI];
    let runFirst: Buffer | null = null;
    let runEnd = 0;
    let runJoined = false;
    const endRun = (): void => {
      if (runFirst === null) return;
      segments.push(runJoined ? Buffer.from(runFirst.buffer, runFirst.byteOffset, runEnd - runFirst.byteOffset) : runFirst);
      runFirst = null;
    };
    const append = (b: Buffer): void => {
      if (runFirst !== null && b.buffer === runFirst.buffer && b.byteOffset === runEnd) {
        runEnd += b.length;
        runJoined = true;
        return;
      }
      endRun();
      runFirst = b;
      runEnd = b.byteOffset + b.length;
      runJoined = false;
    };
    /** For each queued reply (after MULTI's), the command it belongs to (a SELECT: the command after it). */
    const owners: number[] = [];
    /** Where each command's reply sits in EXEC's array (SELECTs take places too). */
    const positions: number[] = [];
    let db = startDb;
    let index = 0;
    for (const command of commands) {
      if (command.db !== db) {
        endRun();
        segments.push(encodeCommand(['SELECT', command.db]));
        owners.push(index);
        db = command.db;
      }
      append(command.encoded);
      const count = command.count ?? 1;
      for (let j = 0; j < count; j++) {
        positions.push(owners.length);
        owners.push(index++);
      }
    }
    if (db !== startDb) {
      endRun();
      segments.push(encodeCommand(['SELECT', startDb]));
      owners.push(index - 1);
    }
    endRun();
    segments.push(EXEC);
    const total = owners.length + 2;
    let refusedAt: number | null = null;
    let refusal: string | null = null;
    this.connection.sendMany(segments, total, (reply, at) => {
      if (reply instanceof RedisConnectionError) {
        this.onConnectionLost(reply);
        done({ applied: false, error: reply.message, refusedAt: null, lost: true });
        return;
      }
      if (at < total - 1) {
        // MULTI's reply, or a command's +QUEUED (or its refusal: the batch will be aborted).
        if (reply instanceof Error && refusedAt === null) {
          refusedAt = at === 0 ? 0 : owners[at - 1]!;
          refusal = reply.message;
        }
        return;
      }
      if (reply instanceof Error) done({ applied: false, error: refusal ?? reply.message, refusedAt, lost: false });
      else if (Array.isArray(reply)) {
        const replies = new Array<Reply>(positions.length);
        for (let i = 0; i < positions.length; i++) replies[i] = reply[positions[i]!] ?? null;
        done({ applied: true, replies });
      } else done({ applied: false, error: `unexpected EXEC reply: ${String(reply)}`, refusedAt: null, lost: false });
    });
  }

  /** One command and its reply (a SELECT first when needed), as a promise. */
  call(db: number, args: readonly Arg[]): Promise<Reply | undefined> {
    return new Promise((resolve, reject) => this.send(db, args, (error, reply) => (error ? reject(new Error(error)) : resolve(reply))));
  }

  /** Send without database tracking (server-wide commands). */
  sendRaw(encoded: Buffer, onReply?: ReplyHandler): void {
    this.connection.send(encoded, (reply) => {
      if (reply instanceof RedisConnectionError) this.onConnectionLost(reply);
      else if (!onReply) return;
      else if (reply instanceof Error) onReply(reply.message, undefined);
      else onReply(null, reply);
    });
  }

  drain(): Promise<void> {
    return this.connection.drain();
  }
}

/**
 * The target side: a few pipelined connections (lanes). The snapshot spreads whole keys over
 * the lanes; the command stream uses lane 0 alone, which keeps the source's order.
 */
export class TargetWriter {
  private constructor(
    readonly endpoint: Endpoint,
    readonly lanes: Lane[],
    readonly info: TargetInfo,
  ) {}

  static async open(endpoint: Endpoint, options: { lanes?: number; onConnectionLost: (error: Error) => void; replyTimeoutMs?: number }): Promise<TargetWriter> {
    const count = Math.max(1, options.lanes ?? 4);
    const connections: RedisConnection[] = [];
    try {
      for (let i = 0; i < count; i++) {
        connections.push(
          await RedisConnection.connect({ host: endpoint.host, port: endpoint.port, user: endpoint.user, password: endpoint.password, tls: endpoint.tls, name: `ferry-writer-${i}`, replyTimeoutMs: options.replyTimeoutMs }),
        );
      }
      const info = await probeTarget(connections[0]!);
      let reported = false;
      const lost = (error: Error): void => {
        if (reported) return; // every pending command of every lane reports the same loss
        reported = true;
        options.onConnectionLost(error);
      };
      // A connection that dies while idle has no pending command to report it.
      for (const c of connections) void c.closed.then((error) => error && lost(error));
      return new TargetWriter(endpoint, connections.map((c) => new Lane(c, lost)), info);
    } catch (e) {
      for (const c of connections) c.destroy('abandoned');
      throw e;
    }
  }

  private next = 0;

  /** The lane for the next whole key: the least loaded, round-robin among equals. */
  pickLane(): Lane {
    let best = this.lanes[this.next]!;
    for (const lane of this.lanes) if (lane.connection.inflight < best.connection.inflight) best = lane;
    this.next = (this.next + 1) % this.lanes.length;
    return best;
  }

  async drain(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.drain()));
  }

  close(): void {
    for (const l of this.lanes) void l.connection.close().catch(() => undefined);
  }
}

/** Version and family of the target, from INFO server. */
export async function probeTarget(connection: RedisConnection): Promise<TargetInfo> {
  const reply = await connection.call(['INFO', 'server']);
  const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : '';
  const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(text)?.[1]?.trim();
  const valkeyVersion = field('valkey_version');
  const valkey = valkeyVersion !== undefined || field('server_name') === 'valkey';
  const versionText = valkeyVersion ?? field('redis_version') ?? '0.0.0';
  const parts = versionText.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const version: [number, number, number] = [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
  return { version, valkey, format: rdbVersionOfServer(version, valkey), supportsAbsTtl: version[0] >= 5 || valkey };
}
