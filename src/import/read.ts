/**
 * Reading the parts of a backup: an RDB into RDB entries, an AOF into batches of commands, and
 * an AOF with an RDB preamble into both, in that order.
 *
 * Everything is pull-driven: nothing is read from a file until the consumer has finished with
 * what it was given (an entry handler's promise resolved, a command batch taken from the
 * generator), so a slow target slows the reading and memory holds one chunk at a time.
 */
import type { Readable } from 'node:stream';
import type { RdbEntry } from '../rdb/entries.js';
import { RdbError } from '../rdb/errors.js';
import { NEED_DATA, RdbParser, type RdbMagic, type RdbParserOptions } from '../rdb/parser.js';
import { CommandStreamDecoder, StreamProtocolError, type CommandStreamOptions, type StreamCommand } from '../resp/command-stream.js';
import { ByteSource, type ByteStream } from './byte-source.js';
import { BackupError, type BackupWarning } from './errors.js';

const HASH = 0x23; // '#'
const LF = 0x0a;

/** Warnings go here when the caller gives no handler: never dropped silently. */
function defaultWarning(w: BackupWarning): void {
  process.emitWarning(w.message, { code: `FERRY_BACKUP_${w.code.toUpperCase().replace(/-/g, '_')}` });
}

function sourceOf(input: ByteStream | ByteSource, file: string): ByteSource {
  return input instanceof ByteSource ? input : new ByteSource(input, file);
}

// ---------------------------------------------------------------------------------------------
// RDB

export interface RdbReadOptions extends RdbParserOptions {
  /** Name used in messages (default: the ByteSource's, else 'RDB'). */
  file?: string;
  /**
   * What to do with bytes after the RDB's end (its EOF opcode and checksum):
   *  - 'rest': leave them in the ByteSource for the next reader (an AOF's RDB preamble);
   *  - 'warn': read them to the end and report them as a 'trailing-bytes' warning; Redis
   *    ignores them in a dump.rdb too, but they are never dropped silently.
   * Default: 'rest' when given a ByteSource, 'warn' when given a stream.
   */
  afterEnd?: 'rest' | 'warn';
  onWarning?: (warning: BackupWarning) => void;
}

export interface RdbSummary {
  magic: RdbMagic;
  version: number;
  keys: number;
  /** Null when the file has no checksum (version < 5, or saved with rdbchecksum no). */
  checksumVerified: boolean | null;
  /** Length of the RDB in bytes, from its first byte to the end of its checksum. */
  bytes: number;
}

/**
 * Parses one RDB from `input` and hands every entry to `onEntry`, awaiting it when it returns a
 * promise (the back-pressure of the snapshot applier). Throws BackupError naming the file and
 * the byte offset when the RDB is corrupt or truncated.
 */
export async function readRdb(
  input: ByteStream | ByteSource,
  onEntry: (entry: RdbEntry, parser: RdbParser) => void | Promise<void>,
  options: RdbReadOptions = {},
): Promise<RdbSummary> {
  const file = options.file ?? (input instanceof ByteSource ? input.file : 'RDB');
  const afterEnd = options.afterEnd ?? (input instanceof ByteSource ? 'rest' : 'warn');
  const src = sourceOf(input, file);
  const start = src.offset;
  const parser = new RdbParser(options);
  let keys = 0;
  let checksumVerified: boolean | null = null;

  const pump = async (): Promise<void> => {
    for (;;) {
      const entry = parser.next();
      if (entry === NEED_DATA || entry === null) return;
      if (entry.kind === 'end') {
        keys = entry.keys;
        checksumVerified = entry.checksumVerified;
      }
      const pending = onEntry(entry, parser);
      if (pending) await pending;
    }
  };

  try {
    while (!parser.isFinished) {
      const chunk = await src.read();
      if (chunk === null) parser.end();
      else parser.push(chunk);
      await pump();
      // The parser throws when input ends before the RDB does; this is only a safety net.
      if (chunk === null && !parser.isFinished) throw new BackupError(`${file}: the RDB ends before its EOF opcode`, file, src.offset);
    }
  } catch (err) {
    if (!(input instanceof ByteSource)) await src.close();
    if (err instanceof RdbError) {
      throw new BackupError(`${file}: ${err.message.replace('corrupt snapshot', 'corrupt RDB')}`, file, start + err.offset, { cause: err });
    }
    throw err;
  }

  const bytes = parser.offset;
  const rest = parser.takeRest();
  if (afterEnd === 'rest') {
    src.unshift(rest);
  } else {
    const trailing = rest.reduce((n, b) => n + b.length, 0) + (await src.drain());
    if (trailing > 0) {
      const at = start + bytes;
      (options.onWarning ?? defaultWarning)({
        code: 'trailing-bytes',
        file,
        offset: at,
        message:
          `${file}: ${trailing} bytes after the end of the RDB at byte ${at} are ignored (as Redis does); ` +
          `if this file is an AOF with an RDB preamble, give it an .aof name`,
      });
    }
  }
  return { magic: parser.magic, version: parser.version, keys, checksumVerified, bytes };
}

// ---------------------------------------------------------------------------------------------
// AOF

export interface AofReadOptions extends CommandStreamOptions {
  /** Name used in messages (default: the ByteSource's, else 'AOF'). */
  file?: string;
  /**
   * Tolerate a command cut by the end of the file, and a MULTI without EXEC at the end, as
   * Redis does with `aof-load-truncated yes` (its default): the cut command or the incomplete
   * transaction is dropped and reported as a warning with its offset. Redis allows this only in
   * the last file of a multi-part AOF; elsewhere it is an error (pass BackupPart.last).
   * Default true.
   */
  allowTruncatedTail?: boolean;
  onWarning?: (warning: BackupWarning) => void;
}

export interface AofSummary {
  /** Commands yielded (a dropped incomplete transaction is not counted). */
  commands: number;
  /** Bytes read from the start of the commands (after any RDB preamble) to the end of the file. */
  bytes: number;
  /** Annotation lines skipped (`#TS:...` with aof-timestamp-enabled). */
  annotations: number;
  /** Offset of the end of the last complete command when the tail was cut, else null. */
  truncatedAt: number | null;
}

/**
 * The commands of an AOF, in batches, in file order. `offsetBefore`/`offsetAfter` of each
 * command are byte offsets in the file (they start after the RDB preamble, if the ByteSource
 * was read past one).
 *
 * - Annotation lines (`#...\n` between commands, e.g. `#TS:<unix time>` written with
 *   aof-timestamp-enabled) are skipped, as Redis's loader does.
 * - A transaction arrives whole: MULTI and its commands are held back until EXEC and come in
 *   one batch, so a MULTI without EXEC at the end of the file (a crash mid-transaction) is
 *   dropped instead of leaving the target inside a transaction. Redis keeps a transaction in
 *   memory on the source too, so this is bounded by what the source could hold.
 * - A command cut by the end of the file is a warning with the offset (or an error, see
 *   allowTruncatedTail); any other malformed byte throws BackupError naming the offset.
 * - A bare "\n" between commands (Redis never writes one and its loader refuses it) is skipped
 *   by the decoder, which shifts the offsets reported after it by one byte each.
 */
export async function* aofCommands(input: ByteStream | ByteSource, options: AofReadOptions = {}): AsyncGenerator<StreamCommand[], AofSummary, undefined> {
  const file = options.file ?? (input instanceof ByteSource ? input.file : 'AOF');
  const warn = options.onWarning ?? defaultWarning;
  const allowTruncated = options.allowTruncatedTail ?? true;
  const src = sourceOf(input, file);
  // A stream given here is ours to close when the caller stops early; a ByteSource is not.
  const owned = !(input instanceof ByteSource);
  try {
    return yield* readCommands(src, file, options, warn, allowTruncated);
  } finally {
    if (owned) await src.close();
  }
}

async function* readCommands(
  src: ByteSource,
  file: string,
  options: AofReadOptions,
  warn: (w: BackupWarning) => void,
  allowTruncated: boolean,
): AsyncGenerator<StreamCommand[], AofSummary, undefined> {
  const start = src.offset;

  let decoder = new CommandStreamDecoder(start, options);
  /** File offset of the next byte to process. */
  let pos = start;
  /** File offset after the last complete command (where Redis would truncate). */
  let lastEnd = start;
  let inAnnotation = false;
  let annotations = 0;
  let commands = 0;
  /** A transaction being held back until its EXEC. */
  let tx: StreamCommand[] | null = null;
  let batch: StreamCommand[] = [];

  const take = (command: StreamCommand): void => {
    lastEnd = command.offsetAfter;
    if (tx !== null) {
      tx.push(command);
      if (command.name === 'exec') {
        for (const c of tx) batch.push(c);
        commands += tx.length;
        tx = null;
      }
    } else if (command.name === 'multi') {
      tx = [command];
    } else {
      batch.push(command);
      commands++;
    }
  };

  const feed = (piece: Buffer): void => {
    if (piece.length === 0) return;
    let decoded: StreamCommand[];
    try {
      decoded = decoder.push(piece);
    } catch (err) {
      if (err instanceof StreamProtocolError) {
        // The decoder speaks of the replication stream; here the bytes are a file.
        const message = err.message.replace(/on the replication stream/g, 'in the AOF').replace(/replication stream/g, 'AOF');
        const m = /at offset (\d+)/.exec(err.message);
        throw new BackupError(`${file}: ${message}`, file, m ? Number(m[1]) : null, { cause: err });
      }
      throw err;
    }
    for (const command of decoded) take(command);
  };

  for (let chunk = await src.read(); chunk !== null; chunk = await src.read()) {
    const len = chunk.length;
    let i = 0;
    while (i < len) {
      if (inAnnotation) {
        const nl = chunk.indexOf(LF, i);
        const end = nl < 0 ? len : nl + 1;
        pos += end - i;
        i = end;
        if (nl >= 0) {
          inAnnotation = false;
          // The decoder cannot skip bytes without counting them: a new one, at the file offset
          // after the annotation, keeps command offsets equal to file offsets. It is at a
          // command boundary here, so no state is lost.
          decoder = new CommandStreamDecoder(pos, options);
        }
        continue;
      }
      if (chunk[i] === HASH && decoder.atBoundary) {
        // '#' where a command would start: an annotation line, skipped like Redis's loader does.
        inAnnotation = true;
        annotations++;
        continue;
      }
      // Feed up to the next '#' (a '#' at i, inside a command, is data). Most chunks have no
      // '#' and go to the decoder whole.
      let next = chunk.indexOf(HASH, i + 1);
      if (next < 0) next = len;
      feed(chunk.subarray(i, next));
      pos += next - i;
      i = next;
    }
    if (batch.length > 0) {
      const out = batch;
      batch = [];
      yield out;
    }
  }

  let truncatedAt: number | null = null;
  const cutCommand = !decoder.atBoundary;
  const openTx = tx as StreamCommand[] | null;
  if (cutCommand || openTx !== null) {
    const dropFrom = openTx !== null ? openTx[0]!.offsetBefore : lastEnd;
    truncatedAt = dropFrom;
    const what = cutCommand
      ? `the file ends in the middle of a command: ${pos - lastEnd} bytes after byte ${lastEnd} (the end of the last complete command)`
      : `MULTI at byte ${dropFrom} has no EXEC before the end of the file`;
    const dropped = openTx !== null ? `; the transaction from byte ${dropFrom} (MULTI and ${openTx.length - 1} queued commands) is dropped` : '';
    if (!allowTruncated) {
      throw new BackupError(
        `${file}: ${what}${dropped}. Redis tolerates this only in the last file of an AOF (aof-load-truncated); here more files follow, so the backup is corrupt`,
        file,
        dropFrom,
      );
    }
    warn({
      code: cutCommand ? 'truncated-tail' : 'incomplete-transaction',
      file,
      offset: dropFrom,
      message: `${file}: ${what}${dropped}; loaded up to byte ${dropFrom}, as Redis does with aof-load-truncated yes`,
    });
  }
  return { commands, bytes: pos - start, annotations, truncatedAt };
}

// ---------------------------------------------------------------------------------------------
// One part of a backup

/** What a part consists of (see BackupPart in backup.ts). */
export interface ReadablePart {
  kind: 'rdb' | 'aof' | 'aof-with-preamble';
  file: string;
  stream: Readable;
  /** Last part of its AOF: only then may its tail be cut (see AofReadOptions.allowTruncatedTail). */
  last: boolean;
}

export interface PartHandlers {
  /** Each RDB entry (an 'rdb' part, or the preamble of an 'aof-with-preamble' part), in order. */
  entry(entry: RdbEntry, parser: RdbParser): void | Promise<void>;
  /**
   * Called once before the commands of an 'aof' or 'aof-with-preamble' part: reset the
   * selected db to 0 here. Redis loads every AOF file with a new client on db 0, so the first
   * commands of each file (and those after an RDB preamble, whatever db the RDB ended in) run
   * on db 0 until a SELECT says otherwise.
   */
  beginCommands?(): void | Promise<void>;
  /** Each batch of AOF commands, in order; a transaction comes whole in one batch. */
  commands(batch: StreamCommand[]): void | Promise<void>;
  /** Tolerated problems (truncated tail, trailing bytes): log them, count them, show them. */
  warning(warning: BackupWarning): void;
}

export interface PartReadOptions {
  parser?: RdbParserOptions;
  decoder?: CommandStreamOptions;
}

export interface PartSummary {
  file: string;
  kind: ReadablePart['kind'];
  rdb: RdbSummary | null;
  aof: AofSummary | null;
}

/**
 * Reads one part to its end: RDB entries to `handlers.entry`, then (AOF) command batches to
 * `handlers.commands`, awaiting each handler's promise before reading on. The simplest way to
 * apply a part; readRdb and aofCommands are the pieces it is made of.
 */
export async function readBackupPart(part: ReadablePart, handlers: PartHandlers, options: PartReadOptions = {}): Promise<PartSummary> {
  const src = new ByteSource(part.stream, part.file);
  const warning = (w: BackupWarning): void => handlers.warning(w);
  let rdb: RdbSummary | null = null;
  let aof: AofSummary | null = null;
  try {
    if (part.kind === 'rdb' || part.kind === 'aof-with-preamble') {
      rdb = await readRdb(src, (e, p) => handlers.entry(e, p), {
        ...options.parser,
        file: part.file,
        afterEnd: part.kind === 'rdb' ? 'warn' : 'rest',
        onWarning: warning,
      });
    }
    if (part.kind === 'aof' || part.kind === 'aof-with-preamble') {
      const begun = handlers.beginCommands?.();
      if (begun) await begun;
      const it = aofCommands(src, { ...options.decoder, file: part.file, allowTruncatedTail: part.last, onWarning: warning });
      for (;;) {
        const step = await it.next();
        if (step.done === true) {
          aof = step.value;
          break;
        }
        const pending = handlers.commands(step.value);
        if (pending) await pending;
      }
    }
  } finally {
    // After a failure, stop reading (the stream is destroyed); after success it is at its end.
    await src.close();
  }
  return { file: part.file, kind: part.kind, rdb, aof };
}
