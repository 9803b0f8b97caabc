import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { encodeCommand, type Arg } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { Shard } from '../cluster/topology-types.js';
import { RedisConnection, RedisConnectionError } from '../resp/connection.js';

/** The outcome of one routed command: an error text (after redirections) or the reply. */
export type RoutedReply = (error: string | null, reply: Reply | undefined) => void;

const SLOTS = 16384;
const ASKING = encodeCommand(['ASKING']);
const MULTI = encodeCommand(['MULTI']);
const EXEC = encodeCommand(['EXEC']);
/** How long TRYAGAIN / CLUSTERDOWN / LOADING wait before the slot's commands are sent again. */
const RETRY_DELAY_MS = 100;
const MAX_REDIRECTS = 50;

/** One unit routed to a slot: a single command, or MULTI + commands + EXEC (kept together). */
interface Unit {
  slot: number;
  commands: Buffer[];
  transaction: boolean;
  done: RoutedReply;
  redirects: number;
}

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
  private readonly roomWaiters: (() => void)[] = [];
  /** Commands routed but not yet answered, all nodes: the back-pressure measure. */
  private outstanding = 0;

  constructor(
    private readonly credentials: Pick<Endpoint, 'user' | 'password' | 'tls'>,
    shards: readonly Shard[],
    private readonly onConnectionLost: (error: Error) => void,
    private readonly maxOutstanding = 4000,
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

  get full(): boolean {
    return this.outstanding >= this.maxOutstanding;
  }

  waitForRoom(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Route one command (already encoded) to the owner of `slot`. */
  send(slot: number, encoded: Buffer, done: RoutedReply): void {
    this.submit({ slot, commands: [encoded], transaction: false, done, redirects: 0 });
  }

  /** MULTI + commands + EXEC on the owner of `slot`; `done` gets EXEC's reply. */
  sendTransaction(slot: number, encoded: Buffer[], done: RoutedReply): void {
    this.submit({ slot, commands: encoded, transaction: true, done, redirects: 0 });
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

  /** Resolves when every routed command has its final reply. */
  async drain(): Promise<void> {
    while (this.outstanding > 0 || this.fenced.size > 0) {
      if (this.failure) throw this.failure;
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.failure) throw this.failure;
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
      node.connecting = RedisConnection.connect({ host, port, ...this.credentials, name: 'ferry-writer' }).then((c) => {
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
      for (const cmd of unit.commands) c.send(cmd, unit.transaction ? (r) => this.onQueued(unit, r) : (r) => this.onReply(unit, r));
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
  private onQueued(unit: Unit, reply: Reply | RedisConnectionError): void {
    if (reply instanceof RedisConnectionError) return; // the EXEC callback reports it
    if (reply instanceof ReplyError && redirection(reply) && !this.queuedRedirect.has(unit)) this.queuedRedirect.set(unit, reply);
  }

  private onReply(unit: Unit, reply: Reply | RedisConnectionError): void {
    this.inflight[unit.slot]!--;
    if (reply instanceof RedisConnectionError) {
      this.answered();
      return this.lost(reply);
    }
    const redirect = unit.transaction ? (this.queuedRedirect.get(unit) ?? (reply instanceof ReplyError ? reply : null)) : reply instanceof ReplyError ? reply : null;
    const kind = redirect ? redirection(redirect) : null;
    if (redirect && kind && unit.redirects < MAX_REDIRECTS) {
      this.queuedRedirect.delete(unit);
      unit.redirects++;
      const target = kind === 'MOVED' || kind === 'ASK' ? redirect.message.split(' ')[2] ?? null : null;
      if (kind === 'MOVED' && target) this.slotOwner[unit.slot] = this.node(target);
      this.fence(unit, kind === 'MOVED' || kind === 'ASK' ? 0 : RETRY_DELAY_MS, kind === 'ASK' ? target : null);
      return;
    }
    this.answered();
    if (reply instanceof Error) unit.done(reply.message, undefined);
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
    if (!this.full && this.roomWaiters.length > 0) for (const w of this.roomWaiters.splice(0)) w();
  }

  private lost(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const w of this.roomWaiters.splice(0)) w();
    this.onConnectionLost(error);
  }
}

/** MOVED / ASK / TRYAGAIN / CLUSTERDOWN / LOADING: a reply that means "not here, not now". */
function redirection(e: ReplyError): 'MOVED' | 'ASK' | 'TRYAGAIN' | 'CLUSTERDOWN' | 'LOADING' | null {
  const code = e.code;
  return code === 'MOVED' || code === 'ASK' || code === 'TRYAGAIN' || code === 'CLUSTERDOWN' || code === 'LOADING' ? code : null;
}
