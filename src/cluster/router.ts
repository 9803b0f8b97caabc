import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { encodeCommand, type Arg } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { BatchDone } from '../target/batch.js';
import type { Shard } from './topology-types.js';
import { RedisConnection, RedisConnectionError } from '../resp/connection.js';

/** The outcome of one routed command: an error text (after redirections) or the reply. */
export type RoutedReply = (error: string | null, reply: Reply | undefined) => void;

const SLOTS = 16384;
const ASKING = encodeCommand(['ASKING']);
const MULTI = encodeCommand(['MULTI']);
const EXEC = encodeCommand(['EXEC']);
/** How long TRYAGAIN / CLUSTERDOWN / LOADING wait before the slot's commands are sent again. */
const RETRY_DELAY_MS = 100;
/**
 * Redirections one unit follows before its caller gets the last one as the unit's error (about
 * 5 s of CLUSTERDOWN). Not a verdict on the write: a CLUSTERDOWN, TRYAGAIN or LOADING is a
 * passing refusal (src/target/refusals.ts), which the callers send again in order (resume mode
 * auto) or report; only a MOVED/ASK loop ends up refused for good.
 */
const MAX_REDIRECTS = 50;

/** One unit routed to a slot: a single command, or MULTI + commands + EXEC (kept together). */
interface Unit {
  slot: number;
  commands: Buffer[];
  transaction: boolean;
  done: RoutedReply;
  redirects: number;
  /** Transactions: the first command refused when queued (not a redirection), and why. */
  refusedAt?: number;
  refusal?: string;
}

/** How to log in to every node: the seed endpoint's user, password (and transport settings). */
export type NodeCredentials = Pick<Endpoint, 'user' | 'password' | 'tls'>;

interface Node {
  address: string;
  connection: RedisConnection | null;
  connecting: Promise<RedisConnection> | null;
}

/**
 * Routes commands to the master that owns their slot, one pipelined connection per master.
 *
 * Redirections keep per-slot order: when a reply says MOVED, ASK, TRYAGAIN or CLUSTERDOWN, the
 * slot is *fenced*: commands for it that are still in flight come back (in order) and join the
 * retry list, new commands for it wait behind them, and only when nothing of that slot is in
 * flight any more are the retries and the waiting commands sent, in their original order, to
 * the slot's (new) owner. A retry never duplicates a write: a redirected command was not executed.
 */
export class ClusterRouter {
  private readonly slotOwner = new Array<Node | null>(SLOTS).fill(null);
  private readonly nodes = new Map<string, Node>();
  private readonly inflight = new Uint32Array(SLOTS);
  /** Slots being redirected: their retry list then the commands that arrived meanwhile. */
  private readonly fenced = new Map<number, { retry: Unit[]; waiting: Unit[]; delayMs: number; askTo: string | null }>();
  private failure: Error | null = null;
  /**
   * Units routed and not yet answered for good (redirections included). Memory is bounded by
   * the callers' flow control (src/target/flow-control.ts), which counts every write it hands
   * over; this count only tells when everything is answered.
   */
  private outstanding = 0;
  private drainWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    private readonly credentials: NodeCredentials,
    shards: readonly Shard[],
    private readonly onConnectionLost: (error: Error) => void,
    private readonly replyTimeoutMs?: number,
  ) {
    for (const shard of shards) {
      const node = this.node(describeEndpoint(shard.master));
      for (const [start, end] of shard.slots) for (let s = start; s <= end; s++) this.slotOwner[s] = node;
    }
  }

  /** Opens a connection to every known master now (so bad credentials fail early). */
  async connectAll(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => this.connectionOf(n)));
  }

  /** Every master (for commands that belong to all of them). */
  masters(): string[] {
    return [...new Set(this.slotOwner.filter((n): n is Node => n !== null).map((n) => n.address))];
  }

  /** Route one command (already encoded) to the owner of `slot`. */
  send(slot: number, encoded: Buffer, done: RoutedReply): void {
    this.submit({ slot, commands: [encoded], transaction: false, done, redirects: 0 });
  }

  /** MULTI + commands + EXEC on the owner of `slot`; `done` gets EXEC's reply. */
  sendTransaction(slot: number, encoded: Buffer[], done: RoutedReply): void {
    this.submit({ slot, commands: encoded, transaction: true, done, redirects: 0 });
  }

  /** A batch (MULTI ... EXEC) on the owner of `slot`, after redirections, with the batch verdict. */
  sendBatch(slot: number, encoded: Buffer[], done: BatchDone): void {
    const unit: Unit = {
      slot,
      commands: encoded,
      transaction: true,
      redirects: 0,
      done: (error, reply) => {
        if (error !== null) done({ applied: false, error: unit.refusal ?? error, refusedAt: unit.refusedAt ?? null, lost: this.failure !== null });
        else if (Array.isArray(reply)) done({ applied: true, replies: reply });
        else done({ applied: false, error: `unexpected EXEC reply: ${String(reply)}`, refusedAt: null, lost: false });
      },
    };
    this.submit(unit);
  }

  /** Send to one master by address (broadcasts). Not fenced: key-less commands. */
  sendToMaster(address: string, encoded: Buffer, done: RoutedReply): void {
    const node = this.node(address);
    this.outstanding++;
    void this.connectionOf(node).then(
      (c) =>
        c.send(encoded, (reply) => {
          this.answered();
          if (reply instanceof RedisConnectionError) return this.lost(reply);
          if (reply instanceof Error) done(reply.message, undefined);
          else done(null, reply);
        }),
      (e: Error) => {
        this.answered();
        this.lost(e);
      },
    );
  }

  /** Resolves when every routed command has its final reply; rejects if a connection is lost. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** One call with a reply, routed by slot (the rewrite steps read from the target this way). */
  call(slot: number, args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.send(slot, encodeCommand(args), (error, reply) => (error ? reject(new ReplyError(error)) : resolve(reply ?? null)));
    });
  }

  close(): void {
    for (const n of this.nodes.values()) void n.connection?.close().catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------

  private node(address: string): Node {
    let node = this.nodes.get(address);
    if (!node) {
      node = { address, connection: null, connecting: null };
      this.nodes.set(address, node);
    }
    return node;
  }

  private connectionOf(node: Node): Promise<RedisConnection> {
    if (node.connection) return Promise.resolve(node.connection);
    if (!node.connecting) {
      const colon = node.address.lastIndexOf(':');
      const host = node.address.slice(0, colon).replace(/^\[|\]$/g, '');
      const port = Number(node.address.slice(colon + 1));
      node.connecting = RedisConnection.connect({ host, port, ...this.credentials, name: 'ferry-writer', replyTimeoutMs: this.replyTimeoutMs }).then((c) => {
        node.connection = c;
        void c.closed.then((error) => error && this.lost(error));
        return c;
      });
    }
    return node.connecting;
  }

  private submit(unit: Unit): void {
    if (this.failure) return unit.done(this.failure.message, undefined);
    this.outstanding++;
    const fence = this.fenced.get(unit.slot);
    if (fence) fence.waiting.push(unit);
    else this.dispatch(unit, null);
  }

  private dispatch(unit: Unit, askTo: string | null): void {
    const owner = askTo ? this.node(askTo) : this.slotOwner[unit.slot];
    if (!owner) {
      // No known owner: treat like CLUSTERDOWN for that slot, retried after a pause.
      this.fence(unit, RETRY_DELAY_MS, null);
      return;
    }
    this.inflight[unit.slot]!++;
    const write = (c: RedisConnection): void => {
      if (askTo) c.send(ASKING);
      if (unit.transaction) c.send(MULTI);
      unit.commands.forEach((cmd, i) => c.send(cmd, unit.transaction ? (r) => this.onQueued(unit, i, r) : (r) => this.onReply(unit, r)));
      if (unit.transaction) c.send(EXEC, (r) => this.onReply(unit, r));
    };
    if (owner.connection) write(owner.connection);
    else
      this.connectionOf(owner).then(write, (e: Error) => {
        this.inflight[unit.slot]!--;
        this.lost(e);
      });
  }

  /** Replies to commands queued inside MULTI: only redirections matter (EXEC will abort). */
  private queuedRedirect = new WeakMap<Unit, ReplyError>();
  private onQueued(unit: Unit, index: number, reply: Reply | RedisConnectionError): void {
    if (reply instanceof RedisConnectionError || !(reply instanceof ReplyError)) return; // the EXEC callback reports a loss
    if (redirection(reply)) {
      if (!this.queuedRedirect.has(unit)) this.queuedRedirect.set(unit, reply);
    } else if (unit.refusedAt === undefined) {
      unit.refusedAt = index;
      unit.refusal = reply.message;
    }
  }

  private onReply(unit: Unit, reply: Reply | RedisConnectionError): void {
    this.inflight[unit.slot]!--;
    if (reply instanceof RedisConnectionError) {
      this.answered();
      return this.lost(reply);
    }
    const redirect = unit.transaction ? (this.queuedRedirect.get(unit) ?? (reply instanceof ReplyError ? reply : null)) : reply instanceof ReplyError ? reply : null;
    const kind = redirect ? redirection(redirect) : null;
    this.queuedRedirect.delete(unit);
    if (redirect && kind && unit.redirects < MAX_REDIRECTS) {
      unit.redirects++;
      unit.refusedAt = unit.refusal = undefined;
      const target = kind === 'MOVED' || kind === 'ASK' ? redirect.message.split(' ')[2] ?? null : null;
      if (kind === 'MOVED' && target) this.slotOwner[unit.slot] = this.node(target);
      this.fence(unit, kind === 'MOVED' || kind === 'ASK' ? 0 : RETRY_DELAY_MS, kind === 'ASK' ? target : null);
      return;
    }
    this.answered();
    // Redirected too often: the caller gets the redirection's own text (not the EXECABORT that
    // followed it), so its refusal policy sees a cluster that is not ready (CLUSTERDOWN,
    // TRYAGAIN: passing, sent again in order) and not a write refused for good.
    if (redirect && kind) {
      unit.refusedAt = unit.refusal = undefined;
      unit.done(redirect.message, undefined);
    } else if (reply instanceof Error) unit.done(reply.message, undefined);
    else unit.done(null, reply);
    this.release(unit.slot);
  }

  /** Holds the slot until everything of it in flight is back, then resends in order. */
  private fence(unit: Unit, delayMs: number, askTo: string | null): void {
    let fence = this.fenced.get(unit.slot);
    if (!fence) {
      fence = { retry: [], waiting: [], delayMs, askTo };
      this.fenced.set(unit.slot, fence);
    }
    fence.retry.push(unit);
    fence.delayMs = Math.max(fence.delayMs, delayMs);
    if (askTo) fence.askTo = askTo;
    this.release(unit.slot);
  }

  private release(slot: number): void {
    const fence = this.fenced.get(slot);
    if (!fence || this.inflight[slot]! > 0) return;
    const resend = (): void => {
      if (this.fenced.get(slot) !== fence) return;
      this.fenced.delete(slot);
      // ASK applies to the retried commands only (their keys moved); the rest follow the map.
      for (const u of fence.retry) this.dispatch(u, fence.askTo);
      for (const u of fence.waiting) {
        const again = this.fenced.get(slot);
        if (again) again.waiting.push(u);
        else this.dispatch(u, null);
      }
    };
    if (fence.delayMs > 0) setTimeout(resend, fence.delayMs);
    else resend();
  }

  private answered(): void {
    this.outstanding--;
    if (this.outstanding === 0 && this.drainWaiters.length > 0) for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  private lost(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const w of this.drainWaiters.splice(0)) w.reject(error);
    this.onConnectionLost(error);
  }
}

/** MOVED / ASK / TRYAGAIN / CLUSTERDOWN / LOADING: a reply that means "not here, not now". */
function redirection(e: ReplyError): 'MOVED' | 'ASK' | 'TRYAGAIN' | 'CLUSTERDOWN' | 'LOADING' | null {
  const code = e.code;
  return code === 'MOVED' || code === 'ASK' || code === 'TRYAGAIN' || code === 'CLUSTERDOWN' || code === 'LOADING' ? code : null;
}
