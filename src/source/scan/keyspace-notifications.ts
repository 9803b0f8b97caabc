/**
 * Keyspace notifications: the change feed of a source that refuses replication.
 *
 * One subscriber connection per source master (`PSUBSCRIBE __keyspace@*__:*`; notifications
 * are local to the node that executes the write, so every master of a cluster needs its own).
 * A notification names a db and a key, never a value: the engine re-reads the key. Pub/sub has
 * no delivery guarantee, so the connection's loss is reported (the engine then rescans), and
 * `barrier()` tells when every notification published before it has been received.
 *
 * `notify-keyspace-events` must contain K (keyspace channel) and A (every event class):
 * `enableNotifications` adds them with CONFIG SET where the source allows it and returns how to
 * restore the old value, else says exactly what to set.
 */
import type net from 'node:net';
import { dial } from '../../common/dial.js';
import { describeEndpoint, type Endpoint } from '../../common/endpoint.js';
import { encodeCommand, type Arg } from '../../resp/encode.js';
import { ReplyDecoder, ReplyError, type Reply } from '../../resp/reply-decoder.js';
import type { RedisConnection } from '../../resp/connection.js';

export const KEYSPACE_PATTERN = '__keyspace@*__:*';
const CHANNEL_PREFIX = Buffer.from('__keyspace@');

/** A key changed (or expired, or was deleted) in `db`; `event` is the notification's text. */
export type KeyNotification = (db: number, key: Buffer, event: string) => void;

/** `__keyspace@<db>__:<key>` → db and key (the key may hold any bytes, including "__:"). */
export function parseKeyspaceChannel(channel: Buffer): { db: number; key: Buffer } | null {
  if (channel.length < CHANNEL_PREFIX.length + 4 || channel.compare(CHANNEL_PREFIX, 0, CHANNEL_PREFIX.length, 0, CHANNEL_PREFIX.length) !== 0) return null;
  let at = CHANNEL_PREFIX.length;
  let db = 0;
  let digits = 0;
  while (at < channel.length && channel[at]! >= 0x30 && channel[at]! <= 0x39) {
    db = db * 10 + channel[at]! - 0x30;
    at++;
    digits++;
  }
  if (digits === 0 || channel[at] !== 0x5f || channel[at + 1] !== 0x5f || channel[at + 2] !== 0x3a) return null; // "__:"
  return { db, key: channel.subarray(at + 3) };
}

interface Waiting {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export class KeyspaceSubscriber {
  private readonly waiting: Waiting[] = [];
  private barrierPromise: Promise<void> | null = null;
  private closedByUs = false;
  private lostReported = false;
  /** Notifications received since the start. */
  received = 0;

  private constructor(
    private readonly socket: net.Socket,
    private readonly where: string,
    private readonly onKey: KeyNotification,
    private readonly onLost: (reason: string) => void,
  ) {
    const decoder = new ReplyDecoder((r) => this.onReply(r));
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (e) {
        this.lost(`protocol error: ${(e as Error).message}`);
      }
    });
    socket.on('error', (e) => this.lost(e.message));
    socket.on('close', () => this.lost('the source closed the subscription'));
  }

  /** Connects, authenticates and subscribes; resolves once the subscription is confirmed. */
  static async open(endpoint: Endpoint, onKey: KeyNotification, onLost: (reason: string) => void): Promise<KeyspaceSubscriber> {
    const where = describeEndpoint(endpoint);
    const socket = await dial(endpoint, { timeoutMs: 10_000 }).catch((e: Error) => {
      throw new Error(`cannot connect to source ${where} for keyspace notifications: ${e.message}`);
    });
    const s = new KeyspaceSubscriber(socket, where, onKey, onLost);
    try {
      if (endpoint.password !== undefined) {
        await s.request(endpoint.user !== undefined ? ['AUTH', endpoint.user, endpoint.password] : ['AUTH', endpoint.password]);
      }
      await s.request(['CLIENT', 'SETNAME', 'ferry-keyspace']).catch(() => undefined);
      const r = await s.request(['PSUBSCRIBE', KEYSPACE_PATTERN]);
      if (!Array.isArray(r) || String(r[0]).toLowerCase() !== 'psubscribe') throw new Error(`unexpected PSUBSCRIBE reply`);
    } catch (e) {
      s.close();
      throw new Error(`source ${where} refused the keyspace subscription: ${(e as Error).message}`);
    }
    return s;
  }

  private request(args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Resolves once every notification published before this call has been handed to onKey. */
  barrier(): Promise<void> {
    // One PING serves every caller that arrives while it is out.
    this.barrierPromise ??= this.request(['PING']).then(
      () => {
        this.barrierPromise = null;
      },
      (e: Error) => {
        this.barrierPromise = null;
        throw e;
      },
    );
    return this.barrierPromise;
  }

  private onReply(r: Reply): void {
    if (Array.isArray(r) && r.length === 4 && Buffer.isBuffer(r[0]) && r[0].length === 8 && r[0].toString('latin1') === 'pmessage') {
      const parsed = Buffer.isBuffer(r[2]) ? parseKeyspaceChannel(r[2]) : null;
      if (parsed) {
        this.received++;
        this.onKey(parsed.db, parsed.key, Buffer.isBuffer(r[3]) ? r[3].toString('latin1') : '');
      }
      return;
    }
    const w = this.waiting.shift();
    if (!w) return;
    if (r instanceof ReplyError) w.reject(r);
    else w.resolve(r);
  }

  private lost(reason: string): void {
    this.socket.destroy();
    for (const w of this.waiting.splice(0)) w.reject(new Error(`keyspace subscription to ${this.where} lost: ${reason}`));
    if (this.closedByUs || this.lostReported) return;
    this.lostReported = true;
    this.onLost(reason);
  }

  close(): void {
    this.closedByUs = true;
    this.socket.destroy();
  }
}

/** The flags Ferry needs: K (keyspace channel) and A (all event classes). */
function withKeyspaceFlags(current: string): string {
  let flags = current;
  if (!flags.includes('K')) flags += 'K';
  // A stands for g$lshzxet (and d on 7.0+); any one missing means some writes go unseen.
  if (!flags.includes('A')) flags += 'A';
  return flags;
}

export function hasKeyspaceFlags(flags: string): boolean {
  return flags.includes('K') && flags.includes('A');
}

export type NotificationSetup =
  /** CONFIG SET was used: `previous` is to be put back when the migration ends. */
  | { state: 'enabled'; previous: string }
  | { state: 'already' }
  /** CONFIG GET is refused: whether notifications are on cannot be told. */
  | { state: 'unknown'; reason: string }
  | { state: 'refused'; reason: string };

export async function enableNotifications(c: RedisConnection, where: string): Promise<NotificationSetup> {
  let current: string;
  try {
    const r = await c.call(['CONFIG', 'GET', 'notify-keyspace-events']);
    if (!Array.isArray(r) || !Buffer.isBuffer(r[1])) throw new ReplyError('ERR no such parameter');
    current = r[1].toString('latin1');
  } catch (e) {
    if (!(e instanceof ReplyError)) throw e;
    return { state: 'unknown', reason: `CONFIG GET is refused on ${where} (${e.message})` };
  }
  if (hasKeyspaceFlags(current)) return { state: 'already' };
  const wanted = withKeyspaceFlags(current);
  try {
    await c.call(['CONFIG', 'SET', 'notify-keyspace-events', wanted]);
  } catch (e) {
    if (!(e instanceof ReplyError)) throw e;
    return {
      state: 'refused',
      reason: `source ${where} has notify-keyspace-events "${current}" and refuses CONFIG SET (${e.message}): set notify-keyspace-events to "${wanted}" on the source (for a managed service, in its parameter group), then start again`,
    };
  }
  return { state: 'enabled', previous: current };
}
