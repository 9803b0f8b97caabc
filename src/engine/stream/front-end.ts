import { keysOf } from '../../cluster/command-keys.js';
import type { StreamCommand } from '../../resp/command-stream.js';
import { encodeCommand } from '../../resp/encode.js';
import type { ChannelWrite } from '../batch-channel.js';
import type { DbMapper, DbPlacement } from '../db-map.js';
import type { StreamStats } from '../stats.js';

/**
 * One command of the source's stream as the target will take it: the target db, the encoded
 * command (as the source sent it, or re-encoded with the db's key prefix), and its name and key
 * for reports. `args` are the arguments as the target gets them (the cluster back end plans
 * with them).
 */
export class StreamWrite implements ChannelWrite {
  private encodedCache: Buffer | null;

  constructor(
    readonly db: number,
    private readonly command: StreamCommand,
    private readonly prefixedArgs: Buffer[] | null,
  ) {
    this.encodedCache = prefixedArgs ? null : command.raw;
  }

  get encoded(): Buffer {
    return (this.encodedCache ??= encodeCommand(this.prefixedArgs!));
  }

  get args(): Buffer[] {
    return this.prefixedArgs ?? this.command.args;
  }

  get name(): string {
    return this.command.name.toUpperCase();
  }

  get key(): Buffer | null {
    return this.args[1] ?? null;
  }

  get size(): number {
    return this.prefixedArgs ? this.encoded.length : this.command.size;
  }
}

/**
 * A unit of the stream: one command, or a whole source transaction (MULTI ... EXEC), with the
 * replication offset after it and the source db selected after it (what a checkpoint taken
 * right after the unit holds). A unit without writes only moves the offset on (PING, REPLCONF,
 * SELECT, a command of a db that is not migrated).
 */
export interface StreamUnit {
  /** Position in the stream (0, 1, 2...), assigned by the sequencer. */
  seq: number;
  endOffset: number;
  dbAfter: number;
  writes: StreamWrite[];
  /** A source transaction: its writes must be applied atomically where the target allows it. */
  transaction: boolean;
  /** Bytes the unit holds (flow control). */
  bytes: number;
}

export interface FrontEndOptions {
  /** Drop FLUSHALL / FLUSHDB instead of forwarding them. */
  dropFlush?: boolean;
}

/** Replication chatter: never forwarded, but its bytes count for the offset. */
const CHATTER = new Set(['ping', 'replconf']);

/**
 * The one front end of the replication stream (and of an AOF being imported): it classifies
 * each command once — chatter and filtered commands (dropped), SELECT (tracked, never sent as
 * is: the back ends select the mapped db themselves), MULTI ... EXEC (gathered into one unit),
 * writes (mapped to their target db, key prefix applied) — and hands out units in stream order.
 */
export class StreamFrontEnd {
  /** The source db the stream has selected. */
  private sourceDb = 0;
  private placement: DbPlacement | null;
  /** The open source transaction, or null. */
  private transaction: StreamWrite[] | null = null;
  private transactionBytes = 0;

  constructor(
    private readonly dbs: DbMapper,
    private readonly stats: StreamStats,
    private readonly options: FrontEndOptions = {},
  ) {
    this.placement = dbs.placement(0);
  }

  /** Where the stream starts (db 0 after a full sync, the checkpoint's db after a resume). */
  startAt(db: number): void {
    this.sourceDb = db;
    this.placement = this.dbs.placement(db);
    this.transaction = null;
  }

  /** True while a source transaction is open (its unit comes with EXEC). */
  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /** The unit `command` completes, or null while it is inside a source transaction. */
  take(command: StreamCommand): StreamUnit | null {
    const { name } = command;
    this.stats.receivedOffset = command.offsetAfter;
    if (CHATTER.has(name) || this.isSentinelChatter(command) || (this.options.dropFlush && (name === 'flushall' || name === 'flushdb'))) {
      this.stats.commandsDropped++;
      return this.nothingToWrite(command);
    }
    if (name === 'select') {
      this.sourceDb = Number(command.args[1]?.toString('latin1'));
      this.placement = this.dbs.placement(this.sourceDb);
      return this.nothingToWrite(command);
    }
    if (name === 'multi') {
      this.transaction = [];
      this.transactionBytes = command.size;
      this.stats.transactions++;
      return null;
    }
    if (name === 'exec') {
      const writes = this.transaction ?? [];
      const bytes = this.transactionBytes + command.size;
      this.transaction = null;
      return this.unit(command.offsetAfter, writes, true, bytes);
    }
    const place = this.placement;
    if (place === null) {
      // A source db that is not migrated.
      this.stats.commandsDropped++;
      return this.nothingToWrite(command);
    }
    this.stats.commandsForwarded++;
    const write = new StreamWrite(place.db, command, place.prefix ? withPrefix(command.args, place.prefix) : null);
    if (this.transaction) {
      this.transaction.push(write);
      this.transactionBytes += command.size;
      return null;
    }
    return this.unit(command.offsetAfter, [write], false, command.size);
  }

  /** The link broke: a transaction cut in the middle is dropped (the resumed stream sends it again). */
  interrupted(dbAtApplied: number): void {
    this.startAt(dbAtApplied);
  }

  /** A command that writes nothing: its own unit, or a part of the open transaction's bytes. */
  private nothingToWrite(command: StreamCommand): StreamUnit | null {
    if (this.transaction) {
      this.transactionBytes += command.size;
      return null;
    }
    return this.unit(command.offsetAfter, [], false, command.size);
  }

  private unit(endOffset: number, writes: StreamWrite[], transaction: boolean, bytes: number): StreamUnit {
    return { seq: 0, endOffset, dbAfter: this.sourceDb, writes, transaction, bytes };
  }

  /** PUBLISH __sentinel__:hello is Sentinel's own traffic, meaningless on the target. */
  private isSentinelChatter(command: StreamCommand): boolean {
    return command.name === 'publish' && command.args[1]?.toString('latin1') === '__sentinel__:hello';
  }
}

/** The command with the db's key prefix added to every key argument. */
function withPrefix(args: Buffer[], prefix: Buffer): Buffer[] | null {
  const spec = keysOf(args);
  if (spec.kind !== 'keys') return null;
  const out = args.slice();
  for (const i of spec.positions) out[i] = Buffer.concat([prefix, args[i]!]);
  return out;
}
