import { Readable } from 'node:stream';
import { BackupError, errorMessage } from './errors.js';

/** Whatever BackupFile.open() may return: a Node Readable or an old-style readable stream. */
export type ByteStream = Readable | NodeJS.ReadableStream;

/** A Node Readable over any readable stream (old-style streams are wrapped). */
export function toReadable(stream: ByteStream): Readable {
  return stream instanceof Readable ? stream : new Readable().wrap(stream);
}

/**
 * Pull-style reading of one file's bytes: `read()` hands out the stream's chunks one at a time
 * and `unshift()` puts back what a reader did not use, so that the RDB preamble of an AOF and
 * its commands can be read by two readers in turn (the RDB parser returns the bytes past the
 * RDB's end, and they go back here for the command decoder).
 *
 * Nothing is read ahead: the next chunk is pulled from the stream only when asked for, so a
 * slow consumer stops the stream (the Readable stops at its highWaterMark and, through it, the
 * disk, the network or the decompressor), and memory stays at one chunk plus the stream's
 * buffer, whatever the size of the file.
 */
export class ByteSource {
  private readonly iterator: AsyncIterator<unknown>;
  private readonly pending: Buffer[] = [];
  private handedOut = 0;
  private done = false;

  constructor(
    stream: ByteStream,
    /** Name used in error messages. */
    readonly file: string,
  ) {
    this.iterator = toReadable(stream)[Symbol.asyncIterator]();
  }

  /** Offset in the file of the next byte read() returns. */
  get offset(): number {
    return this.handedOut;
  }

  /** The next chunk (never empty), or null at the end of the file. */
  async read(): Promise<Buffer | null> {
    const back = this.pending.shift();
    if (back !== undefined) {
      this.handedOut += back.length;
      return back;
    }
    while (!this.done) {
      let step: IteratorResult<unknown>;
      try {
        step = await this.iterator.next();
      } catch (err) {
        this.done = true;
        throw new BackupError(`${this.file}: reading failed at byte ${this.handedOut}: ${errorMessage(err)}`, this.file, this.handedOut, { cause: err });
      }
      if (step.done === true) {
        this.done = true;
        break;
      }
      const chunk = asBuffer(step.value);
      if (chunk.length === 0) continue;
      this.handedOut += chunk.length;
      return chunk;
    }
    return null;
  }

  /** Puts chunks back in front, in order: the next read() returns chunks[0]. */
  unshift(chunks: readonly Buffer[]): void {
    for (let i = chunks.length - 1; i >= 0; i--) {
      const chunk = chunks[i]!;
      if (chunk.length === 0) continue;
      this.pending.unshift(chunk);
      this.handedOut -= chunk.length;
    }
  }

  /** Reads and drops everything left; returns the number of bytes dropped. */
  async drain(): Promise<number> {
    let n = 0;
    for (let chunk = await this.read(); chunk !== null; chunk = await this.read()) n += chunk.length;
    return n;
  }

  /** Stops reading: a stream not read to its end is destroyed (this releases its file or socket). */
  async close(): Promise<void> {
    this.pending.length = 0;
    if (this.done) return;
    this.done = true;
    await this.iterator.return?.();
  }
}

function asBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  // A stream with an encoding set hands out strings; latin1 gives the bytes back one to one
  // only if that encoding was latin1, so refuse anything else rather than corrupt the data.
  throw new TypeError(`expected a byte stream, got a chunk of type ${typeof value} (was an encoding set on the stream?)`);
}
