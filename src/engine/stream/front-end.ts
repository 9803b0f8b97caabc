import { keysOf } from '../../cluster/command-keys.js';
import { CommandStreamDecoder, type StreamCommand } from '../../resp/command-stream.js';
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
 * A run of consecutive plain writes of one db, as the source sent them: one view of the receive
 * chunk that holds them all, forwarded with one write. Nothing is allocated per command on this
 * path; the commands are only decoded one by one again (`explode`) when the target refuses
 * something in the run's batch and a refusal must be reported with its own command and key.
 * Standalone targets only (a cluster plans every command).
 */
export class RunWrite implements ChannelWrite {
  readonly name = 'RUN';
  readonly key = null;

  constructor(
    readonly db: number,
    readonly encoded: Buffer,
    /** Commands in `encoded`. */
    readonly count: number,
  ) {}

  get size(): number {
    return this.encoded.length;
  }

  /** The run's commands, each its own write (for reports and for retries after a refusal). */
  explode(): StreamWrite[] {
    const commands = new CommandStreamDecoder(0).push(this.encoded);
    if (commands.length !== this.count) throw new Error(`internal: a run of ${this.count} commands decodes to ${commands.length}`);
    return commands.map((c) => new StreamWrite(this.db, c, null));
  }
}

export type UnitWrite = StreamWrite | RunWrite;

/**
 * A unit of the stream: one command, a run of plain writes (RunWrite), or a whole source transaction (MULTI ... EXEC), with the
 * replication offset after it and the source db selected after it (what a checkpoint taken
 * right after the unit holds). A unit without writes only moves the offset on (PING, REPLCONF,
 * SELECT, a command of a db that is not migrated).
 */
export interface StreamUnit {
  /** Position in the stream (0, 1, 2...), assigned by the sequencer. */
  seq: number;
  endOffset: number;
  dbAfter: number;
  writes: UnitWrite[];
  /** A source transaction: its writes must be applied atomically where the target allows it. */
  transaction: boolean;
  /** Bytes the unit holds (flow control). */
  bytes: number;
}

export interface FrontEndOptions {
  /** Drop FLUSHALL / FLUSHDB instead of forwarding them. */
  dropFlush?: boolean;
  /**
   * Gather consecutive plain writes received in one chunk into one unit holding one RunWrite
   * (standalone targets: the back end forwards the bytes as they came).
   */
  coalesce?: boolean;
}

/** At most this many commands in one run (a run is also bounded by its receive chunk). */
const MAX_RUN_COMMANDS = 1000;

/** Commands that never join a run: the front end treats them specially, or reports them. */
const NOT_RUNNABLE = new Set(['ping', 'replconf', 'select', 'multi', 'exec', 'publish', 'flushall', 'flushdb']);

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
  /** The open run: commands [runStart, runEnd) of runChunk, or runChunk null. */
  private runChunk: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  private runCount = 0;
  private runEndOffset = 0;

  constructor(
    private readonly dbs: DbMapper,
    private readonly stats: StreamStats,
    private readonly options: FrontEndOptions = {},
  ) {
    this.placement = dbs.placement(0);
  }

  /** Where the stream starts (db 0 after a full sync, the checkpoint's db after a resume). */
  startAt(db: number): void {
    this.runChunk = null;
    this.sourceDb = db;
    this.placement = this.dbs.placement(db);
    this.transaction = null;
  }

  /** True while a source transaction is open (its unit comes with EXEC). */
  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /**
   * Coalescing: `command` joins the open run (null), or closes the open run and starts the next
   * one (the closed run's unit is returned), or cannot be part of a run (undefined: the caller
   * takes the open run with `takeRun` and then the command with `take`).
   */
  takeRunnable(command: StreamCommand): StreamUnit | null | undefined {
    const chunk = command.chunk;
    if (chunk == null || this.transaction !== null || NOT_RUNNABLE.has(command.name)) return undefined;
    const place = this.placement;
    if (place === null || place.prefix) return undefined;
    this.stats.receivedOffset = command.offsetAfter;
    this.stats.commandsForwarded++;
    const start = command.chunkStart!;
    if (this.runChunk === chunk && this.runEnd === start && this.runCount < MAX_RUN_COMMANDS) {
      this.runEnd = start + command.size;
      this.runCount++;
      this.runEndOffset = command.offsetAfter;
      return null;
    }
    const closed = this.takeRun();
    this.runChunk = chunk;
    this.runStart = start;
    this.runEnd = start + command.size;
    this.runCount = 1;
    this.runEndOffset = command.offsetAfter;
    return closed;
  }

  /** The open run as a unit (and the run is closed), or null when none is open. */
  takeRun(): StreamUnit | null {
    const chunk = this.runChunk;
    if (chunk === null) return null;
    this.runChunk = null;
    const write = new RunWrite(this.placement!.db, chunk.subarray(this.runStart, this.runEnd), this.runCount);
    return this.unit(this.runEndOffset, [write], false, this.runEnd - this.runStart);
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

  /** The link broke: a transaction cut in the middle is dropped (the resumed stream sends it again), so is an open run. */
  interrupted(dbAtApplied: number): void {
    this.runChunk = null;
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

  private unit(endOffset: number, writes: UnitWrite[], transaction: boolean, bytes: number): StreamUnit {
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
