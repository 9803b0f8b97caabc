import type { Socket } from 'node:net';
import type { Throttle } from './throttle.js';

/** The source stopped sending (repl-timeout): the link is dead even though TCP did not say so. */
export class SourceSilentError extends Error {}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Pull-style reading of a socket: the replica link asks for a line (handshake), then for
 * chunks (snapshot, command stream). Reading stops (socket paused) once `highWaterMark` bytes
 * wait unread, so a slow target slows the source down instead of filling memory.
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  /** Paused by the bandwidth limit until this time (ms); 0 when not. */
  private throttledUntil = 0;

  constructor(
    private readonly socket: Socket,
    private readonly describe: string,
    private readonly highWaterMark = 8 * 1024 * 1024,
    private readonly throttle: Throttle | null = null,
    /** Waiting this long for a byte fails the read (null: wait forever). */
    private readonly idleTimeoutMs: number | null = null,
    /** What the reader waits for, for the timeout's message ("the handshake", "the snapshot"...). */
    private readonly stage: () => string = () => 'data',
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
      this.bytesReceived += chunk.length;
      const wait = this.throttle?.consume(chunk.length) ?? 0;
      if (wait > 0) {
        // Reading less from the socket is what slows the source: TCP pushes back.
        this.throttledUntil = Date.now() + wait;
        socket.pause();
        setTimeout(() => {
          this.throttledUntil = 0;
          if (this.bufferedBytes < this.highWaterMark / 2 && !socket.destroyed) socket.resume();
        }, wait).unref();
      }
      if (this.bufferedBytes >= this.highWaterMark) socket.pause();
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.failure ??= err;
      this.notify();
    });
  }

  /** Every byte the socket has delivered, consumed or not (for bandwidth accounting). */
  bytesReceived = 0;

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async waitForData(): Promise<void> {
    if (this.chunks.length > 0) return;
    if (this.failure) throw new Error(`${this.describe}: ${this.failure.message}`);
    if (this.ended) throw new Error(`${this.describe}: connection closed by the source`);
    let timer: NodeJS.Timeout | null = null;
    const limit = this.idleTimeoutMs;
    if (limit !== null) {
      const expire = (): void => {
        // Time spent paused by the bandwidth limit is Ferry's, not the source's silence.
        const throttled = this.throttledUntil - Date.now();
        if (throttled > 0) {
          timer = setTimeout(expire, throttled + limit);
          return;
        }
        this.failure ??= new SourceSilentError(`no data for ${formatSeconds(limit)} during ${this.stage()} (a master sends something at least every 10 s)`);
        this.socket.destroy();
        this.notify();
      };
      timer = setTimeout(expire, limit);
    }
    try {
      await new Promise<void>((resolve) => (this.wake = resolve));
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (this.chunks.length === 0) this.throwIfGone();
  }

  private throwIfGone(): void {
    const failure = this.failure as Error | null;
    if (failure) throw new Error(`${this.describe}: ${failure.message}`);
    if (this.ended) throw new Error(`${this.describe}: connection closed by the source`);
  }

  private taken(bytes: number): void {
    this.bufferedBytes -= bytes;
    if (this.bufferedBytes < this.highWaterMark / 2 && this.socket.isPaused() && this.throttledUntil === 0) this.socket.resume();
  }

  /** The next chunk, whatever its size. Throws when the connection ends. */
  async chunk(): Promise<Buffer> {
    await this.waitForData();
    const chunk = this.chunks.shift()!;
    this.taken(chunk.length);
    return chunk;
  }

  /** The next chunk if one is already here, without waiting. */
  chunkNow(): Buffer | null {
    const chunk = this.chunks.shift();
    if (!chunk) return null;
    this.taken(chunk.length);
    return chunk;
  }

  /** Put bytes back in front (what a line read or the snapshot did not use). */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.unshift(chunk);
    this.bufferedBytes += chunk.length;
  }

  /**
   * One line, without its line ending. A bare "\n" (the master's keep-alive while it
   * prepares a snapshot) comes back as an empty string.
   */
  async line(maxLength = 64 * 1024): Promise<string> {
    let acc: Buffer = Buffer.alloc(0);
    for (;;) {
      const chunk = await this.chunk();
      const data = acc.length ? Buffer.concat([acc, chunk]) : chunk;
      const nl = data.indexOf(0x0a);
      if (nl >= 0) {
        this.unshift(data.subarray(nl + 1));
        const end = nl > 0 && data[nl - 1] === 0x0d ? nl - 1 : nl;
        return data.subarray(0, end).toString('latin1');
      }
      if (data.length > maxLength) throw new Error(`${this.describe}: protocol error: line longer than ${maxLength} bytes`);
      acc = data;
    }
  }
}
