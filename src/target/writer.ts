import { encodeCommand, type Arg } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import type { Endpoint } from '../common/endpoint.js';
import { RedisConnection, RedisConnectionError } from '../resp/connection.js';
import { rdbVersionOfServer, type TargetFormat } from '../rdb/dump.js';

/** Refusals that pass with time: memory freed, loading done, a script finished. */
const TRANSIENT = /^(OOM|LOADING|BUSY|MASTERDOWN|TRYAGAIN|MISCONF)\b/;

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
  /**
   * Writes refused for a reason that passes (OOM, LOADING, BUSY...), to be sent again in order
   * once everything in flight is answered; while there are some, the lane counts as full.
   */
  private readonly refused: { db: number; encoded: Buffer; onReply?: ReplyHandler }[] = [];
  private retrying: Promise<void> | null = null;
  /** Retry refusals that pass (resume mode auto); otherwise they are reported at once. */
  retryTransient = false;
  /** Called for each retry round, to log it. */
  onRetry: ((error: string, commands: number, attempt: number) => void) | null = null;

  constructor(
    readonly connection: RedisConnection,
    /** The connection is gone: what it carried may or may not have been applied. */
    private readonly onConnectionLost: (error: Error) => void,
  ) {}

  get full(): boolean {
    return this.retrying !== null || this.connection.full;
  }

  async waitForRoom(): Promise<void> {
    while (this.retrying) await this.retrying;
    return this.connection.waitForRoom();
  }

  /** Forget the selected database (after a transaction failed, SELECT inside it may not have run). */
  forgetDb(): void {
    this.selectedDb = -1;
  }

  /** Returns whether a SELECT went out first (a transaction counts it among its replies). */
  send(db: number, args: readonly Arg[], onReply?: ReplyHandler): boolean {
    return this.sendEncoded(db, encodeCommand(args), onReply);
  }

  /** Like send, for a command already in RESP form (forwarded as the source sent it). */
  /** `retryable`: false inside a transaction, whose refusals abort it as a whole. */
  sendEncoded(db: number, encoded: Buffer, onReply?: ReplyHandler, retryable = true): boolean {
    let selected = false;
    if (db !== this.selectedDb) {
      selected = true;
      this.connection.send(encodeCommand(['SELECT', db]), (reply) => {
        if (reply instanceof RedisConnectionError) this.onConnectionLost(reply);
        else if (reply instanceof Error) this.onConnectionLost(new Error(`target refused SELECT ${db}: ${reply.message}`));
      });
      this.selectedDb = db;
    }
    if (!this.retryTransient || !retryable) this.sendRaw(encoded, onReply);
    else
      this.sendRaw(encoded, (error, reply) => {
        if (error && TRANSIENT.test(error)) this.refuse(db, encoded, onReply, error);
        else onReply?.(error, reply);
      });
    return selected;
  }

  private refuse(db: number, encoded: Buffer, onReply: ReplyHandler | undefined, error: string): void {
    this.refused.push({ db, encoded, onReply });
    this.retrying ??= this.retryRefused(error);
  }

  /**
   * Sends the refused writes again, one at a time and in their order, with a growing pause,
   * until the target takes each. (Writes already in flight behind a refused one may be applied
   * before its retry: with OOM only writes that need memory are refused.)
   */
  private async retryRefused(firstError: string): Promise<void> {
    let error = firstError;
    try {
      await this.connection.drain().catch(() => undefined);
      for (let attempt = 1; this.refused.length > 0; attempt++) {
        this.onRetry?.(error, this.refused.length, attempt);
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt - 1, 6))));
        while (this.refused.length > 0) {
          const next = this.refused[0]!;
          const outcome = await new Promise<{ error: string | null; reply: Reply | undefined }>((resolve) => {
            if (next.db !== this.selectedDb) {
              this.connection.send(encodeCommand(['SELECT', next.db]));
              this.selectedDb = next.db;
            }
            this.sendRaw(next.encoded, (e, reply) => resolve({ error: e, reply }));
          });
          if (outcome.error && TRANSIENT.test(outcome.error)) {
            error = outcome.error;
            break; // still refused: pause and try again
          }
          this.refused.shift();
          next.onReply?.(outcome.error, outcome.reply);
        }
      }
    } finally {
      this.retrying = null;
    }
  }

  /** One command and its reply (a SELECT first when needed), as a promise. */
  call(db: number, args: readonly Arg[]): Promise<Reply | undefined> {
    return new Promise((resolve, reject) => this.send(db, args, (error, reply) => (error ? reject(new Error(error)) : resolve(reply))));
  }

  /** Send without database tracking (MULTI, EXEC, server-wide commands). */
  sendRaw(encoded: Buffer, onReply?: ReplyHandler): void {
    this.connection.send(encoded, (reply) => {
      if (reply instanceof RedisConnectionError) this.onConnectionLost(reply);
      else if (!onReply) return;
      else if (reply instanceof Error) onReply(reply.message, undefined);
      else onReply(null, reply);
    });
  }

  /** `fn` runs once every command sent so far on this lane has been answered. */
  marker(fn: () => void): void {
    this.connection.marker(fn);
  }

  async drain(): Promise<void> {
    while (this.retrying) await this.retrying;
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

  static async open(endpoint: Endpoint, options: { lanes?: number; onConnectionLost: (error: Error) => void }): Promise<TargetWriter> {
    const count = Math.max(1, options.lanes ?? 4);
    const connections: RedisConnection[] = [];
    try {
      for (let i = 0; i < count; i++) {
        connections.push(
          await RedisConnection.connect({ host: endpoint.host, port: endpoint.port, user: endpoint.user, password: endpoint.password, tls: endpoint.tls, name: `ferry-writer-${i}` }),
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
