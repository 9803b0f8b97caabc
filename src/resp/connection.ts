/**
 * A pipelined connection to a target Redis: the unit the writer pushes commands through.
 *
 * Commands are pre-encoded Buffers, written without waiting for replies; replies are matched to
 * callbacks in FIFO order (Redis answers a connection's commands in order). Writes made in the
 * same tick are corked together so a burst costs one writev, not one syscall per command.
 * Back-pressure is explicit (`full`, `waitForRoom`) so the caller bounds memory and latency.
 *
 * No retries and no logging here: on any failure every pending callback gets a
 * RedisConnectionError naming the address, and the engine decides what to do.
 */

import type net from 'node:net';

import { dial, socketErrorReason } from '../common/dial.js';
import { Fifo } from '../common/fifo.js';
import type { EndpointTls } from '../common/endpoint.js';
import { encodeCommand, type Arg } from './encode.js';
import { PushReply, ReplyDecoder, RespProtocolError, type Reply } from './reply-decoder.js';

/** The connection failed or was closed; the commands it carried may or may not have been applied. */
export class RedisConnectionError extends Error {
  override readonly name = 'RedisConnectionError';
}

/** The server refused the user or password: retrying another address or later will not help. */
export class RedisAuthError extends RedisConnectionError {
  /** host:port of the server that refused. */
  constructor(
    message: string,
    readonly address: string,
  ) {
    super(message);
  }
}

/** Receives the reply (a ReplyError for an error reply) or a RedisConnectionError. */
export type ReplyCallback = (reply: Reply | RedisConnectionError) => void;

export interface RedisConnectOptions {
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** Present: the connection speaks TLS. */
  tls?: EndpointTls;
  /** CLIENT SETNAME value (no spaces), to spot Ferry in CLIENT LIST on the target. */
  name?: string;
  /** Covers TCP connect plus AUTH/SETNAME. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default 2000 commands. */
  maxInflight?: number;
  /** Default 32 MB of encoded commands awaiting their reply. */
  maxInflightBytes?: number;
  /**
   * Commands waiting this long for a reply (the oldest one, with nothing answered meanwhile) fail
   * the connection: "no reply from <address> within N s". Default 60 s; null: wait forever.
   */
  replyTimeoutMs?: number | null;
  /** RESP3 push messages (pub/sub after HELLO 3), which answer no command. */
  onPush?: (push: PushReply) => void;
}

interface Pending {
  cb: ReplyCallback | undefined;
  bytes: number;
  /** Replies this entry takes (sendMany: a whole batch is one entry), and how many it has had. */
  count: number;
  got: number;
  many: ManyReplyCallback | undefined;
}

/** Gets each of a sendMany's replies in order with its index, or a RedisConnectionError once. */
export type ManyReplyCallback = (reply: Reply | RedisConnectionError, index: number) => void;

/** Something waiting until `seq` commands have been answered (a marker or a drain). */
interface SeqWaiter {
  seq: number;
  fire: () => void;
  /** Markers have none: they are dropped on failure, since their commands were never answered. */
  fail: ((e: Error) => void) | undefined;
}

interface RoomWaiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_INFLIGHT = 2000;
const DEFAULT_MAX_INFLIGHT_BYTES = 32 * 1024 * 1024;
/** Node's 16 KB default would flag writableNeedDrain after a few commands of one corked tick. */
const WRITABLE_HIGH_WATER_MARK = 1024 * 1024;
const QUIT = encodeCommand(['QUIT']);

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

const DEFAULT_REPLY_TIMEOUT_MS = 60_000;

function errorCode(e: unknown): string {
  return socketErrorReason(e);
}

export class RedisConnection {
  /** host:port, for messages. */
  readonly address: string;
  readonly maxInflight: number;
  readonly maxInflightBytes: number;
  /** Resolves when the connection is gone: null after close(), else the failure. Never rejects. */
  readonly closed: Promise<RedisConnectionError | null>;

  private readonly socket: net.Socket;
  private readonly decoder: ReplyDecoder;
  private readonly pending = new Fifo<Pending>();
  private readonly seqWaiters = new Fifo<SeqWaiter>();
  private roomWaiters: RoomWaiter[] = [];
  private bytesInflight = 0;
  /** Commands sent, and commands answered (or failed), since the start. */
  private sentSeq = 0;
  private answeredSeq = 0;
  private corked = false;
  /** Whether any reply ever arrived (a hang-up before one says something about the port). */
  private gotReply = false;
  private closing = false;
  private failure: RedisConnectionError | null = null;
  private resolveClosed!: (e: RedisConnectionError | null) => void;
  private readonly uncork = (): void => this.flush();
  private readonly replyTimeoutMs: number | null;
  /** When the oldest unanswered command started waiting (or the last reply came). */
  private waitingSince = 0;
  private replyTimer: NodeJS.Timeout | null = null;
  private readonly onPush: ((push: PushReply) => void) | undefined;

  private constructor(socket: net.Socket, address: string, opts: RedisConnectOptions) {
    this.socket = socket;
    this.address = address;
    this.maxInflight = opts.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxInflightBytes = opts.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES;
    this.replyTimeoutMs = opts.replyTimeoutMs === undefined ? DEFAULT_REPLY_TIMEOUT_MS : opts.replyTimeoutMs;
    this.onPush = opts.onPush;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.decoder = new ReplyDecoder((r) => this.onReply(r));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.wakeRoomWaiters());
    socket.on('error', (e) => this.fail(`connection to ${this.address} failed: ${errorCode(e)}`));
    socket.on('close', () => this.onClose());
  }

  /** Connects, authenticates and names the connection. */
  static async connect(opts: RedisConnectOptions): Promise<RedisConnection> {
    const address = formatAddress(opts.host, opts.port);
    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let conn: RedisConnection | undefined;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        // Connected but silent (a server that accepts and never answers) is not "cannot connect".
        const why = conn ? `no reply from ${address} within ${formatMs(timeoutMs)} (connected, but it did not answer ${opts.password === undefined ? 'CLIENT SETNAME' : 'AUTH'})` : `cannot connect to ${address}: timed out after ${formatMs(timeoutMs)}`;
        conn?.destroy();
        // A TLS client on a plain port sends a hello that a plain server never answers.
        const tlsHint = opts.tls && !conn ? `cannot connect to ${address}: the TLS handshake timed out after ${formatMs(timeoutMs)} (a plain port?)` : null;
        reject(new RedisConnectionError(tlsHint ?? why));
      }, timeoutMs);
    });
    const attempt = async (): Promise<RedisConnection> => {
      const socket = await dial(opts, { timeoutMs, writableHighWaterMark: WRITABLE_HIGH_WATER_MARK }).catch((e: Error) => {
        throw new RedisConnectionError(`cannot connect to ${address}: ${e.message}`);
      });
      // The overall timeout fired while the socket was being opened.
      if (timedOut) {
        socket.destroy();
        throw new RedisConnectionError(`cannot connect to ${address}: timed out after ${formatMs(timeoutMs)}`);
      }
      const c = new RedisConnection(socket, address, opts);
      conn = c;
      await c.handshake(opts);
      return c;
    };
    try {
      return await Promise.race([attempt(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(opts: RedisConnectOptions): Promise<void> {
    // Pipelined: both go out in one write.
    const auth =
      opts.password === undefined
        ? undefined
        : this.call(opts.user !== undefined ? ['AUTH', opts.user, opts.password] : ['AUTH', opts.password]);
    // SETNAME may be refused (old server, ACL): the name is a convenience, ignore its failure.
    const setName = opts.name !== undefined ? this.call(['CLIENT', 'SETNAME', opts.name]).catch(() => null) : undefined;
    if (auth !== undefined) {
      try {
        await auth;
      } catch (e) {
        this.destroy();
        // The server's text (WRONGPASS ..., ERR ...) never echoes the password.
        const why = e instanceof Error ? e.message : String(e);
        throw e instanceof RedisConnectionError ? e : new RedisAuthError(`authentication failed for ${this.address}: ${why}`, this.address);
      }
    }
    await setName;
    if (this.failure) {
      // A TLS port answers a plain client's first bytes by hanging up, without a reply.
      if (!opts.tls && !this.gotReply && /closed by the server|ECONNRESET/.test(this.failure.message)) {
        throw new RedisConnectionError(`${this.failure.message} before answering anything (a TLS port? use rediss:// or the TLS options)`);
      }
      throw this.failure;
    }
  }

  /** Commands sent and not yet answered. */
  get inflight(): number {
    return this.pending.length;
  }

  /** Encoded bytes of the commands not yet answered. */
  get inflightBytes(): number {
    return this.bytesInflight;
  }

  /** True when the caller should stop sending and await waitForRoom(). */
  get full(): boolean {
    return (
      this.pending.length >= this.maxInflight ||
      this.bytesInflight >= this.maxInflightBytes ||
      this.socket.writableNeedDrain
    );
  }

  /** The failure, once the connection is unusable. */
  get error(): RedisConnectionError | null {
    return this.failure;
  }

  /**
   * Writes an already-encoded command. `onReply` gets its reply in order, or a
   * RedisConnectionError if the connection fails first (asynchronously if it already has).
   * Callbacks must not throw: a throw leaves the reply stream desynchronised, so it kills the
   * connection and is rethrown.
   */
  send(cmd: Buffer, onReply?: ReplyCallback): void {
    if (this.failure !== null || this.closing) {
      const err = this.failure ?? new RedisConnectionError(`connection to ${this.address} is closing`);
      if (onReply) process.nextTick(onReply, err);
      return;
    }
    this.write(cmd, onReply);
  }

  private write(cmd: Buffer, onReply: ReplyCallback | undefined): void {
    if (this.pending.length === 0) {
      this.waitingSince = Date.now();
      if (this.replyTimeoutMs !== null && this.replyTimer === null) this.watchReplies(this.replyTimeoutMs);
    }
    this.pending.push({ cb: onReply, bytes: cmd.length, count: 1, got: 0, many: undefined });
    this.bytesInflight += cmd.length;
    this.sentSeq++;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(cmd);
  }

  /**
   * Writes `count` already-encoded commands laid out in `segments` (any split: a segment may
   * hold many commands, e.g. a run of the replication stream as received) as one pending entry:
   * `onReply` gets each of the `count` replies in order with its index. One entry and one write
   * per segment instead of one per command is what keeps a batch of thousands of small commands
   * cheap. On failure `onReply` gets the error once.
   */
  sendMany(segments: readonly Buffer[], count: number, onReply: ManyReplyCallback): void {
    if (this.failure !== null || this.closing) {
      const err = this.failure ?? new RedisConnectionError(`connection to ${this.address} is closing`);
      process.nextTick(onReply, err, 0);
      return;
    }
    if (count <= 0) throw new RangeError('sendMany needs at least one command');
    let bytes = 0;
    for (const s of segments) bytes += s.length;
    if (this.pending.length === 0) {
      this.waitingSince = Date.now();
      if (this.replyTimeoutMs !== null && this.replyTimer === null) this.watchReplies(this.replyTimeoutMs);
    }
    this.pending.push({ cb: undefined, bytes, count, got: 0, many: onReply });
    this.bytesInflight += bytes;
    this.sentSeq++;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    for (const s of segments) this.socket.write(s);
  }

  /** Pushes the commands written in this tick to the socket now instead of at the end of the tick. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** Resolves when `full` is false; rejects if the connection fails. */
  waitForRoom(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.full) return Promise.resolve();
    // Blocked by the write buffer alone: release it now rather than wait for the tick.
    this.flush();
    return new Promise((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
  }

  /** Sends a command and resolves with its reply; rejects with ReplyError or RedisConnectionError. */
  call(args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.send(encodeCommand(args), (r) => (r instanceof Error ? reject(r) : resolve(r)));
    });
  }

  /** Resolves once every command sent so far has its reply; rejects if the connection fails first. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.answeredSeq === this.sentSeq) return Promise.resolve();
    return new Promise((resolve, reject) => this.seqWaiters.push({ seq: this.sentSeq, fire: resolve, fail: reject }));
  }

  /**
   * Calls `cb` once every command sent so far has been answered: synchronously if none is in
   * flight. It never fires if the connection fails first (those commands were not acknowledged),
   * nor once the connection has failed.
   */
  marker(cb: () => void): void {
    if (this.failure) return;
    if (this.answeredSeq === this.sentSeq) {
      cb();
      return;
    }
    this.seqWaiters.push({ seq: this.sentSeq, fire: cb, fail: undefined });
  }

  /** Clean shutdown: QUIT after the commands already sent, which still get their replies. */
  async close(): Promise<void> {
    if (this.failure === null && !this.closing) {
      this.closing = true;
      this.write(QUIT, undefined);
      this.flush();
      this.socket.end();
    }
    await this.closed;
  }

  /** Hard stop: pending callbacks get a RedisConnectionError. */
  destroy(reason = 'destroyed'): void {
    this.fail(`connection to ${this.address} ${reason}`);
  }

  /** Fails the connection when replies stop coming while commands wait for them. */
  private watchReplies(limit: number): void {
    this.replyTimer = setInterval(() => {
      if (this.pending.length === 0) {
        clearInterval(this.replyTimer!);
        this.replyTimer = null;
        return;
      }
      if (Date.now() - this.waitingSince >= limit) this.fail(`no reply from ${this.address} within ${formatMs(limit)} (${this.pending.length} commands waiting)`);
    }, Math.min(1000, Math.max(10, Math.floor(limit / 4))));
    this.replyTimer.unref();
  }

  private onData(chunk: Buffer): void {
    // Replies are arriving: the reply timeout counts from the last data (once per chunk, not per reply).
    this.waitingSince = Date.now();
    try {
      this.decoder.push(chunk);
    } catch (e) {
      if (e instanceof RespProtocolError) {
        this.fail(`protocol error from ${this.address}: ${e.message}`);
        return;
      }
      this.fail(`connection to ${this.address} dropped: a reply callback threw`);
      throw e;
    }
  }

  private onReply(r: Reply): void {
    // RESP3 push messages are out of band: they answer no command.
    if (r instanceof PushReply) {
      this.onPush?.(r);
      return;
    }
    this.gotReply = true;
    const head = this.pending.peek();
    if (head === undefined) {
      this.fail(`protocol error from ${this.address}: a reply arrived with no command pending`);
      return;
    }
    if (head.many !== undefined && head.got + 1 < head.count) {
      // A reply inside a sendMany: the entry stays at the head until its last reply.
      head.many(r, head.got++);
      return;
    }
    const p = this.pending.shift()!;
    this.bytesInflight -= p.bytes;
    this.answeredSeq++;
    if (p.many !== undefined) p.many(r, p.got++);
    else if (p.cb) p.cb(r);
    let w = this.seqWaiters.peek();
    while (w !== undefined && w.seq <= this.answeredSeq) {
      this.seqWaiters.shift();
      w.fire();
      w = this.seqWaiters.peek();
    }
    if (this.roomWaiters.length > 0) this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    if (this.roomWaiters.length === 0 || this.full) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private onClose(): void {
    if (this.failure !== null) return;
    const n = this.pending.length;
    // After QUIT, only QUIT's own reply may be missing: that is a clean close.
    if (this.closing && n <= 1) {
      this.fail(`connection to ${this.address} is closed`, true);
      return;
    }
    this.fail(`connection to ${this.address} closed by the server with ${n} replies pending`);
  }

  /** Marks the connection dead and fails everything that waits on it. */
  private fail(message: string, clean = false): void {
    if (this.failure !== null) return;
    const err = new RedisConnectionError(message);
    this.failure = err;
    if (this.replyTimer) clearInterval(this.replyTimer);
    this.replyTimer = null;
    this.socket.destroy();
    const pending = this.pending.takeAll();
    this.bytesInflight = 0;
    this.answeredSeq = this.sentSeq;
    const waiters = this.seqWaiters.takeAll();
    const room = this.roomWaiters;
    this.roomWaiters = [];
    for (const p of pending) {
      if (p.many !== undefined) p.many(err, p.got);
      else p.cb?.(err);
    }
    for (const w of waiters) w.fail?.(err);
    for (const w of room) w.reject(err);
    this.resolveClosed(clean ? null : err);
  }
}
