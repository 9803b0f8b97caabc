import type net from 'node:net';
import { dial } from '../common/dial.js';
import { CommandStreamDecoder, type StreamCommand } from '../resp/command-stream.js';
import { encodeCommand } from '../resp/encode.js';
import type { RdbEntry } from '../rdb/entries.js';
import { NEED_DATA, RdbParser, type RdbParserOptions } from '../rdb/parser.js';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { SocketReader } from './socket-reader.js';
import type { Throttle } from './throttle.js';

/** The source answered in a way that is worth retrying later (-LOADING, -NOMASTERLINK, ...). */
export class TransientSourceError extends Error {
  override readonly name = 'TransientSourceError';
}

/**
 * The source will not act as a master for us: SYNC/PSYNC unknown, renamed or forbidden (NOPERM),
 * or a proxy's refusal (managed services, twemproxy, Codis). Reconnecting cannot help; in
 * source mode `auto` the migration falls back to scan mode.
 */
export class SyncRefusedError extends Error {
  override readonly name = 'SyncRefusedError';
}

/** How the source agreed to feed us, from its reply to PSYNC. */
export type SyncStart =
  | { mode: 'full'; replid: string; offset: number; framing: 'disk' | 'diskless'; snapshotBytes: number | null }
  | { mode: 'continue'; replid: string; offset: number };

/** What the engine does with what the link receives. Returned promises apply back-pressure. */
export interface ReplicaHandlers {
  parserOptions: RdbParserOptions;
  syncStarted(start: SyncStart): void;
  snapshotEntry(entry: RdbEntry, parser: RdbParser): void | Promise<void>;
  /** The snapshot is fully parsed and handed over; resolve once it is applied on the target. */
  snapshotFinished(): Promise<void>;
  command(command: StreamCommand): void | Promise<void>;
  /** Every command of one receive chunk has been handed to `command` (a consumer gathering runs hands them over). */
  endOfChunk?(): void | Promise<void>;
}

export interface ReplicaLinkOptions {
  /** Ask for replid/offset+1 (resume) instead of a full sync. */
  resumeFrom?: { replid: string; offset: number };
  /** Stop after the snapshot (full migration): no command stream is read. */
  snapshotOnly?: boolean;
  connectTimeoutMs?: number;
  ackIntervalMs?: number;
  /**
   * No byte from the source for this long, in any stage (handshake, snapshot, stream), fails the
   * link, like a replica's repl-timeout (default 60 s): a master sends keep-alive newlines while
   * it prepares a snapshot and PINGs its replicas every 10 s in the stream.
   */
  idleTimeoutMs?: number;
  /** Shared bandwidth limit (all links of a migration). */
  throttle?: Throttle;
}

/**
 * Ferry's side of the replication protocol: it joins the source as a replica (handshake,
 * PSYNC), receives the snapshot in either framing, then the command stream, and tells the
 * source how far it has got with REPLCONF ACK. The offset it ACKs is the one the engine says
 * the target has applied (`acknowledge`), never merely what was received.
 */
export class ReplicaLink {
  private socket: net.Socket | null = null;
  private reader: SocketReader | null = null;
  private ackTimer: NodeJS.Timeout | null = null;
  private closedByUs = false;

  /** Replication id of the history we follow, once known. */
  replid: string | null = null;
  /** Offset after the last byte received from the command stream. */
  receivedOffset = 0;
  /** Offset after the last command the target has applied (what we ACK and checkpoint). */
  appliedOffset = 0;
  /** Database selected by the stream at the applied offset. */
  phase: 'connecting' | 'handshake' | 'snapshot' | 'stream' | 'closed' = 'connecting';

  constructor(
    private readonly endpoint: Endpoint,
    private readonly options: ReplicaLinkOptions = {},
  ) {}

  get bytesReceived(): number {
    return this.reader?.bytesReceived ?? 0;
  }

  /** The engine calls this as target replies arrive. */
  acknowledge(offset: number): void {
    if (offset > this.appliedOffset) this.appliedOffset = offset;
  }

  close(): void {
    this.closedByUs = true;
    this.phase = 'closed';
    if (this.ackTimer) clearInterval(this.ackTimer);
    this.ackTimer = null;
    this.socket?.destroy();
  }

  get wasClosedByUs(): boolean {
    return this.closedByUs;
  }

  /** Runs until the snapshot is done (snapshotOnly) or the link fails or is closed. */
  async run(handlers: ReplicaHandlers): Promise<void> {
    try {
      const reader = await this.connect();
      const start = await this.handshake(reader);
      this.replid = start.replid;
      this.receivedOffset = this.appliedOffset = start.offset;
      handlers.syncStarted(start);
      if (start.mode === 'full') {
        this.phase = 'snapshot';
        await this.receiveSnapshot(reader, start, handlers);
        await handlers.snapshotFinished();
        // A diskless master holds the stream back until the first ACK (repl_start_cmd_stream_on_ack).
        this.sendAck();
        if (this.options.snapshotOnly) return;
      }
      this.phase = 'stream';
      this.ackTimer = setInterval(() => this.sendAck(), this.options.ackIntervalMs ?? 1000);
      await this.receiveStream(reader, handlers);
    } finally {
      if (this.ackTimer) clearInterval(this.ackTimer);
      this.ackTimer = null;
      this.socket?.destroy();
      this.phase = 'closed';
    }
  }

  private async connect(): Promise<SocketReader> {
    const where = describeEndpoint(this.endpoint);
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    const socket = await dial(this.endpoint, { timeoutMs }).catch((e: Error) => {
      throw new Error(`cannot connect to source ${where}: ${e.message}`);
    });
    this.socket = socket;
    if (this.closedByUs) socket.destroy();
    this.reader = new SocketReader(socket, `source ${where}`, undefined, this.options.throttle ?? null, this.options.idleTimeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS, () => STAGES[this.phase]);
    return this.reader;
  }

  private send(args: (string | number)[]): void {
    this.socket?.write(encodeCommand(args));
  }

  private async request(reader: SocketReader, args: (string | number)[]): Promise<string> {
    this.send(args);
    let line = await reader.line();
    while (line === '') line = await reader.line(); // keep-alive newlines
    return line;
  }

  private async handshake(reader: SocketReader): Promise<SyncStart> {
    this.phase = 'handshake';
    const where = describeEndpoint(this.endpoint);
    const pong = await this.request(reader, ['PING']);
    if (pong.startsWith('-') && !/^-(NOAUTH|NOPERM|ERR operation not permitted)/.test(pong)) {
      throw classify(`source ${where} refused PING: ${pong.slice(1)}`, pong);
    }
    if (this.endpoint.password !== undefined) {
      const auth = this.endpoint.user
        ? await this.request(reader, ['AUTH', this.endpoint.user, this.endpoint.password])
        : await this.request(reader, ['AUTH', this.endpoint.password]);
      if (!auth.startsWith('+')) throw new Error(`source ${where}: authentication failed: ${auth.slice(1)}`);
    } else if (pong.startsWith('-')) {
      throw new Error(`source ${where} requires authentication: ${pong.slice(1)}`);
    }
    // Errors from REPLCONF are ignored: old servers do not know every option.
    await this.request(reader, ['REPLCONF', 'listening-port', this.socket?.localPort ?? 0]);
    await this.request(reader, ['REPLCONF', 'capa', 'eof', 'capa', 'psync2']);

    const resume = this.options.resumeFrom;
    const reply = await this.request(reader, resume ? ['PSYNC', resume.replid, resume.offset + 1] : ['PSYNC', '?', -1]).catch((e: Error) => {
      // Proxies that do not speak replication (twemproxy and the like) hang up on PSYNC.
      throw this.closedByUs ? e : new SyncRefusedError(`source ${where} closed the connection on PSYNC: ${e.message}`);
    });
    if (reply.startsWith('+FULLRESYNC')) {
      const [, replid, offset] = reply.split(' ');
      if (!replid || replid.length !== 40 || offset === undefined || !/^\d+$/.test(offset)) {
        throw new Error(`source ${where}: malformed PSYNC reply: ${reply}`);
      }
      const framing = await this.snapshotFraming(reader);
      return { mode: 'full', replid, offset: Number(offset), ...framing };
    }
    if (reply.startsWith('+CONTINUE') && resume) {
      const replid = reply.split(' ')[1] ?? resume.replid;
      return { mode: 'continue', replid, offset: resume.offset };
    }
    if (reply.startsWith('-')) {
      const error = classify(`source ${where} refused PSYNC: ${reply.slice(1)}`, reply);
      throw error instanceof TransientSourceError ? error : new SyncRefusedError(error.message);
    }
    throw new Error(`source ${where}: unexpected PSYNC reply: ${reply.slice(0, 200)}`);
  }

  private eofMark: Buffer | null = null;

  /** Reads the `$<len>` or `$EOF:<mark>` line, skipping keep-alive newlines while the source forks. */
  private async snapshotFraming(reader: SocketReader): Promise<{ framing: 'disk' | 'diskless'; snapshotBytes: number | null }> {
    for (;;) {
      const line = await reader.line();
      if (line === '') continue;
      if (line.startsWith('$EOF:')) {
        this.eofMark = Buffer.from(line.slice(5), 'latin1');
        if (this.eofMark.length !== 40) throw new Error(`source sent a malformed snapshot EOF mark: ${line.slice(0, 60)}`);
        return { framing: 'diskless', snapshotBytes: null };
      }
      if (line.startsWith('$') && /^\$\d+$/.test(line)) return { framing: 'disk', snapshotBytes: Number(line.slice(1)) };
      if (line.startsWith('-')) throw classify(`source aborted the snapshot: ${line.slice(1)}`, line);
      throw new Error(`source sent an unexpected line instead of a snapshot: ${line.slice(0, 200)}`);
    }
  }

  private async receiveSnapshot(reader: SocketReader, start: Extract<SyncStart, { mode: 'full' }>, handlers: ReplicaHandlers): Promise<void> {
    const parser = new RdbParser(handlers.parserOptions);
    const pump = async (): Promise<void> => {
      for (;;) {
        const entry = parser.next();
        if (entry === NEED_DATA || entry === null) return;
        const pending = handlers.snapshotEntry(entry, parser);
        if (pending) await pending;
      }
    };

    if (start.framing === 'disk') {
      let remaining = start.snapshotBytes!;
      if (remaining === 0) parser.end();
      while (remaining > 0) {
        let chunk = await reader.chunk();
        if (chunk.length > remaining) {
          reader.unshift(chunk.subarray(remaining));
          chunk = chunk.subarray(0, remaining);
        }
        remaining -= chunk.length;
        parser.push(chunk);
        if (remaining === 0) parser.end();
        await pump();
      }
      await pump();
      if (!parser.isFinished) throw new Error('snapshot ended before its EOF opcode');
      const extra = parser.takeRest().reduce((n, b) => n + b.length, 0);
      if (extra > 0) throw new Error(`snapshot has ${extra} bytes after its checksum, inside the announced length`);
      return;
    }

    // Diskless: the snapshot's end is found by parsing it; the 40-byte mark follows.
    while (!parser.isFinished) {
      parser.push(await reader.chunk());
      await pump();
    }
    let rest = Buffer.concat(parser.takeRest());
    while (rest.length < 40) rest = Buffer.concat([rest, await reader.chunk()]);
    if (!rest.subarray(0, 40).equals(this.eofMark!)) {
      throw new Error('snapshot EOF mark does not match: the snapshot was cut or garbled');
    }
    reader.unshift(rest.subarray(40));
  }

  private async receiveStream(reader: SocketReader, handlers: ReplicaHandlers): Promise<void> {
    const decoder = new CommandStreamDecoder(this.receivedOffset);
    for (;;) {
      const chunk = await reader.chunk();
      const commands = decoder.push(chunk);
      for (const command of commands) {
        this.receivedOffset = command.offsetAfter;
        if (command.name === 'replconf' && command.args[1]?.toString('latin1').toLowerCase() === 'getack') {
          this.sendAck();
        }
        const pending = handlers.command(command);
        if (pending) await pending;
      }
      if (handlers.endOfChunk) {
        const pending = handlers.endOfChunk();
        if (pending) await pending;
      }
    }
  }

  private sendAck(): void {
    if (this.socket && !this.socket.destroyed) this.send(['REPLCONF', 'ACK', this.appliedOffset]);
  }
}

const DEFAULT_SOURCE_TIMEOUT_MS = 60_000;

const STAGES: Record<ReplicaLink['phase'], string> = {
  connecting: 'the connection',
  handshake: 'the handshake (PING, AUTH, REPLCONF, PSYNC)',
  snapshot: 'the snapshot',
  stream: 'the command stream',
  closed: 'the end of the link',
};

function classify(message: string, reply: string): Error {
  return /^-(LOADING|NOMASTERLINK|MASTERDOWN|BUSY|TRYAGAIN)/.test(reply) ? new TransientSourceError(message) : new Error(message);
}
