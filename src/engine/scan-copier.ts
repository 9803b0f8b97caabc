/**
 * Scan mode's copier: copies keys from one source master to the target, one copy of a key at a
 * time, in the order its changes were seen.
 *
 * Keys come from three places: the SCAN of the full phase, keyspace notifications (the dirty
 * set) and repair rounds. Every copy reads the key's current state on the source (DUMP, or type
 * commands for a big key) and writes it through the snapshot path (SnapshotApplier: RESTORE ...
 * ABSTTL REPLACE, or the rewrite path), or DELs it when it no longer exists.
 *
 * Order per key: a key is "in flight" from the moment it is read until its write is answered;
 * a notification for a key in flight marks it to be copied again afterwards, so a later copy
 * never overtakes an earlier one, whichever target lane or slot each takes. The dirty set is a
 * de-duplicated queue bounded in keys and bytes: past that it is dropped and a rescan (a
 * repair round) is asked for instead, so memory never grows with the write rate.
 */
import type { Logger } from 'pino';
import { encodeCommand } from '../resp/encode.js';
import { RedisConnectionError } from '../resp/connection.js';
import type { RdbEntry } from '../rdb/entries.js';
import type { Target } from '../target/target.js';
import type { SourceKeyReader, WholeRead } from '../source/scan/key-reader.js';
import type { DbMapper } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import type { FlowControl } from '../target/flow-control.js';
import type { TargetRefusals } from './refusal-policy.js';
import { SnapshotApplier } from './snapshot-applier.js';
import type { SnapshotStats } from './stats.js';
import { printable } from '../common/printable.js';

export type CopyOrigin = 'scan' | 'notified' | 'repair';

export interface CopyCounts {
  /** Keys listed by the SCAN of the full phase. */
  scanned: number;
  /** Copies written (RESTORE or rewrite), any origin. */
  copied: number;
  /** Copies caused by a notification. */
  recopied: number;
  /** Copies caused by a repair round. */
  repaired: number;
  /** Keys deleted on the target because they no longer exist on the source. */
  deleted: number;
  /** Keys read with type commands (too big, not restorable, or DUMP refused). */
  chunked: number;
  /** Times the dirty set overflowed (each asks for a rescan). */
  overflows: number;
}

export interface KeyCopierOptions {
  reader: SourceKeyReader;
  target: Target;
  dbs: DbMapper;
  errors: WriteErrorLog;
  /** The migration's refusal policy and flow control, shared with every other writer. */
  refusals: TargetRefusals;
  flow: FlowControl;
  /** The migration's snapshot stats: restored / rewritten keys are counted there. */
  stats: SnapshotStats;
  logger: Logger;
  maxInflightKeys?: number;
  maxInflightBytes?: number;
  maxDirtyKeys?: number;
  maxDirtyBytes?: number;
  /** The dirty set overflowed: changes were dropped and must be found by a rescan. */
  onOverflow(): void;
  /** The source connection broke: the copies in flight are lost. */
  onSourceLost(e: Error): void;
}

interface InFlight {
  db: number;
  key: Buffer;
  again: boolean;
  bytes: number;
  origin: CopyOrigin;
}

interface Dirty {
  db: number;
  key: Buffer;
}

const DEFAULTS = { maxInflightKeys: 4096, maxInflightBytes: 64 * 1024 * 1024, maxDirtyKeys: 200_000, maxDirtyBytes: 32 * 1024 * 1024 };
/** Keys remembered as changed during a repair round (past that, the round is inconclusive). */
const TOUCHED_LIMIT = 100_000;

function idOf(db: number, key: Buffer): string {
  return `${db}:${key.toString('latin1')}`;
}

export class KeyCopier {
  readonly counts: CopyCounts = { scanned: 0, copied: 0, recopied: 0, repaired: 0, deleted: 0, chunked: 0, overflows: 0 };
  private readonly inflight = new Map<string, InFlight>();
  private readonly dirty = new Map<string, Dirty>();
  private dirtyBytes = 0;
  private inflightBytes = 0;
  private readonly whole: SnapshotApplier;
  /** Big keys are rebuilt one at a time (KeyRewriter keeps one key's state). */
  private readonly big: SnapshotApplier;
  private readonly bigQueue: { id: string; reason: 'too-big' | 'not-restorable' }[] = [];
  private bigRunning = false;
  private targetRoom: Promise<void> | null = null;
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private pumping = false;
  private stopped = false;
  /** Keys notified since the current repair round began (null: no round running). */
  private touched: Set<string> | null = null;
  private touchedOverflow = false;
  private readonly limits: typeof DEFAULTS;

  constructor(private readonly o: KeyCopierOptions) {
    this.limits = {
      maxInflightKeys: o.maxInflightKeys ?? DEFAULTS.maxInflightKeys,
      maxInflightBytes: o.maxInflightBytes ?? DEFAULTS.maxInflightBytes,
      maxDirtyKeys: o.maxDirtyKeys ?? DEFAULTS.maxDirtyKeys,
      maxDirtyBytes: o.maxDirtyBytes ?? DEFAULTS.maxDirtyBytes,
    };
    this.whole = new SnapshotApplier(o.target, o.stats, o.refusals, o.dbs, o.logger, o.flow);
    this.big = new SnapshotApplier(o.target, o.stats, o.refusals, o.dbs, o.logger, o.flow);
  }

  /** Keys waiting to be copied: queued (dirty) plus being copied. */
  get waiting(): number {
    return this.dirty.size + this.inflight.size;
  }

  get dirtyKeys(): number {
    return this.dirty.size;
  }

  stop(): void {
    this.stopped = true;
    this.wakeRoom();
    this.wakeIdle(true);
  }

  /** A keyspace notification: the key changed (or vanished) on the source. */
  notify(db: number, key: Buffer): void {
    if (this.o.dbs.placement(db) === null) return; // a db the migration leaves out
    const id = idOf(db, key);
    if (this.touched) {
      if (this.touched.size < TOUCHED_LIMIT) this.touched.add(id);
      else this.touchedOverflow = true;
    }
    const f = this.inflight.get(id);
    if (f) {
      f.again = true;
      return;
    }
    if (this.dirty.has(id)) return;
    if (this.dirty.size >= this.limits.maxDirtyKeys || this.dirtyBytes + key.length > this.limits.maxDirtyBytes) {
      this.counts.overflows++;
      this.o.logger.warn({ keys: this.dirty.size, bytes: this.dirtyBytes }, 'the set of changed keys overflowed: dropping it, a rescan will find the changes');
      this.dirty.clear();
      this.dirtyBytes = 0;
      this.o.onOverflow();
    }
    // Copied: a notification's key is a view into a socket chunk that must not be kept alive.
    this.dirty.set(id, { db, key: Buffer.from(key) });
    this.dirtyBytes += key.length;
    this.pump();
  }

  /** Is the key queued or being copied? (A repair round's difference for it is no finding.) */
  isPending(db: number, key: Buffer): boolean {
    const id = idOf(db, key);
    return this.inflight.has(id) || this.dirty.has(id);
  }

  /** A repair round starts: remember which keys change during it. */
  roundStarted(): void {
    this.touched = new Set();
    this.touchedOverflow = false;
  }

  /** Was the key notified since the round started? (Undecidable past the limit: true.) */
  touchedDuringRound(db: number, key: Buffer): boolean {
    return this.touchedOverflow || (this.touched?.has(idOf(db, key)) ?? false);
  }

  /** Ends the round; true when too many keys changed during it to tell findings apart. */
  roundEnded(): boolean {
    this.touched = null;
    return this.touchedOverflow;
  }

  private get hasRoom(): boolean {
    return (
      this.inflight.size < this.limits.maxInflightKeys &&
      this.inflightBytes < this.limits.maxInflightBytes &&
      this.targetRoom === null &&
      !this.o.reader.full
    );
  }

  /** Resolves when another copy may start (back-pressure from the source reads and the target). */
  private async waitForRoom(): Promise<void> {
    while (!this.hasRoom && !this.stopped) {
      if (this.targetRoom) await this.targetRoom;
      else if (this.o.reader.full) await this.o.reader.waitForRoom();
      else await new Promise<void>((r) => this.roomWaiters.push(r));
    }
  }

  private wakeRoom(): void {
    const w = this.roomWaiters;
    this.roomWaiters = [];
    for (const f of w) f();
  }

  /** Resolves once nothing waits (every queued and running copy is written and answered). */
  idle(): Promise<void> {
    if (this.waiting === 0 || this.stopped) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private wakeIdle(force = false): void {
    if (!force && this.waiting > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Copies one key (scan, repair); returns a promise only when it must wait for room (back-pressure). */
  copy(db: number, key: Buffer, origin: 'scan' | 'repair'): void | Promise<void> {
    // No promise on the hot path (a million keys): only when the copier must wait for room.
    if (this.hasRoom || this.stopped) return this.copyNow(db, key, origin);
    return this.waitForRoom().then(() => this.copyNow(db, key, origin));
  }

  private copyNow(db: number, key: Buffer, origin: 'scan' | 'repair'): void {
    if (this.stopped || this.o.dbs.placement(db) === null) return;
    if (origin === 'scan') this.counts.scanned++;
    const id = idOf(db, key);
    const f = this.inflight.get(id);
    if (f) {
      f.again = true;
      return;
    }
    const queued = this.dirty.get(id);
    if (queued) {
      this.dirty.delete(id);
      this.dirtyBytes -= queued.key.length;
    }
    this.start(id, db, key, origin);
  }

  /** Starts copies of queued keys while there is room. */
  private pump(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    void (async () => {
      try {
        while (this.dirty.size > 0 && !this.stopped) {
          if (!this.hasRoom) await this.waitForRoom();
          const first = this.dirty.entries().next();
          if (first.done) break;
          const [id, d] = first.value;
          this.dirty.delete(id);
          this.dirtyBytes -= d.key.length;
          if (this.inflight.has(id)) this.inflight.get(id)!.again = true;
          else this.start(id, d.db, d.key, 'notified');
        }
      } catch (e) {
        this.o.onSourceLost(e as Error);
      } finally {
        this.pumping = false;
      }
    })();
  }

  private start(id: string, db: number, key: Buffer, origin: CopyOrigin): void {
    const f: InFlight = { db, key, again: false, bytes: 0, origin };
    this.inflight.set(id, f);
    this.o.reader.readWhole(db, key, (r) => this.read(id, f, r));
  }

  private read(id: string, f: InFlight, r: WholeRead | Error): void {
    if (this.stopped) return this.finish(id, f);
    if (r instanceof RedisConnectionError) {
      this.finish(id, f);
      return this.o.onSourceLost(r);
    }
    if (r instanceof Error) {
      this.o.errors.record(f.db, f.key, 'DUMP', `the source refused to read the key: ${r.message}`);
      return this.finish(id, f);
    }
    switch (r.kind) {
      case 'gone':
        return this.remove(id, f);
      case 'chunked':
        this.bigQueue.push({ id, reason: r.reason });
        return this.runBig();
      case 'whole': {
        const entry = r.entry;
        if (entry.expireAtMs !== null && entry.expireAtMs <= Date.now()) return this.remove(id, f);
        f.bytes = entry.valueLength;
        this.inflightBytes += f.bytes;
        const room = this.whole.apply(entry, () => {
          this.counted(f);
          this.finish(id, f);
        });
        if (room) this.blockOn(room);
      }
    }
  }

  private counted(f: InFlight): void {
    this.counts.copied++;
    if (f.origin === 'notified') this.counts.recopied++;
    else if (f.origin === 'repair') this.counts.repaired++;
  }

  /** The target is full: no new copy starts until it has room. */
  private blockOn(room: Promise<void>): void {
    if (this.targetRoom) return;
    this.targetRoom = room.then(
      () => {
        this.targetRoom = null;
        this.wakeRoom();
      },
      (e: Error) => {
        this.targetRoom = null;
        this.o.logger.debug({ err: e.message }, 'target lane failed');
        this.wakeRoom();
      },
    );
  }

  /** The key does not exist on the source (any more): delete it on the target. */
  private remove(id: string, f: InFlight): void {
    const place = this.o.dbs.placement(f.db);
    if (place === null) return this.finish(id, f);
    const key = place.prefix ? Buffer.concat([place.prefix, f.key]) : f.key;
    const route = this.o.target.route(place.db, key);
    const command = encodeCommand(['DEL', key]);
    this.o.flow.take(command.length);
    route.send(command, (error, reply) => {
      this.o.flow.give(command.length);
      if (error) this.o.errors.record(place.db, key, 'DEL', error);
      else if (reply === 1) this.counts.deleted++;
      if (f.origin === 'repair') this.counts.repaired++;
      this.finish(id, f);
    });
    const room = this.o.flow.room();
    if (room) this.blockOn(room);
  }

  /** Big keys, one at a time, in bounded chunks. */
  private runBig(): void {
    if (this.bigRunning) return;
    this.bigRunning = true;
    void (async () => {
      try {
        for (let next = this.bigQueue.shift(); next && !this.stopped; next = this.bigQueue.shift()) {
          const f = this.inflight.get(next.id);
          if (!f) continue;
          this.counts.chunked++;
          // Big keys are worth a line; every key of a source without DUMP is not.
          if (next.reason === 'too-big') this.o.logger.info({ db: f.db, key: printable(f.key) }, 'copying a big key with type commands');
          let finished: Promise<void> | null = null;
          const id = next.id;
          let found: boolean;
          try {
            found = await this.o.reader.readChunked(f.db, f.key, next.reason, (entry: RdbEntry) => {
            if (entry.kind !== 'key-end') return this.big.apply(entry);
            finished = new Promise<void>((resolve) => {
              const room = this.big.apply(entry, () => {
                this.counted(f);
                this.finish(id, f);
                resolve();
              });
              if (room) void room.catch(() => undefined);
            });
            return undefined;
          });
          } catch (e) {
            if (e instanceof RedisConnectionError) throw e;
            // The key changed type while it was read (WRONGTYPE), or a command was refused:
            // report it and read it again later.
            this.o.errors.record(f.db, f.key, 'read', `the key could not be read with type commands: ${(e as Error).message}`);
            f.again = !/NOPERM|unknown command/i.test((e as Error).message);
            this.finish(id, f);
            continue;
          }
          if (!found) this.remove(id, f);
          else if (finished) await finished;
        }
      } catch (e) {
        this.o.onSourceLost(e as Error);
      } finally {
        this.bigRunning = false;
      }
    })();
  }

  private finish(id: string, f: InFlight): void {
    if (this.inflight.get(id) !== f) return;
    this.inflight.delete(id);
    this.inflightBytes -= f.bytes;
    if (f.again && !this.stopped) {
      if (!this.dirty.has(id)) {
        this.dirty.set(id, { db: f.db, key: f.key });
        this.dirtyBytes += f.key.length;
      }
      this.pump();
    }
    if (this.roomWaiters.length > 0 && this.hasRoom) this.wakeRoom();
    if (this.waiting === 0) this.wakeIdle();
  }
}
