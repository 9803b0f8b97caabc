import type { BatchDone } from './batch.js';
import { Lane, TargetWriter, type ReplyHandler, type TargetInfo } from './writer.js';

/** Where the commands of one key go, in order: a lane and db (standalone) or a slot (cluster). */
export interface KeyRoute {
  send(encoded: Buffer, done: ReplyHandler): void;
  /** The commands as one MULTI ... EXEC, applied whole or not at all. */
  sendBatch(encoded: Buffer[], done: BatchDone): void;
}

/**
 * The target as the snapshot sees it: route a key's commands, reach every master, drain. The
 * command stream goes through its own back ends (src/engine/stream/). Memory is bounded by the
 * caller's flow control, not here.
 */
export interface Target {
  readonly kind: 'standalone' | 'cluster';
  readonly info: TargetInfo;
  route(db: number, key: Buffer): KeyRoute;
  /** A server-wide command (FUNCTION LOAD, SCRIPT LOAD, FLUSHALL) on every master. */
  broadcast(encoded: Buffer, done: ReplyHandler): void;
  drain(): Promise<void>;
  close(): void;
}

export class StandaloneTarget implements Target {
  readonly kind = 'standalone';
  private readonly routes = new Map<Lane, Map<number, KeyRoute>>();

  constructor(readonly writer: TargetWriter) {}

  get info(): TargetInfo {
    return this.writer.info;
  }

  /** Whole keys spread over the lanes; a route is reusable (it holds no per-key state). */
  route(db: number, _key: Buffer): KeyRoute {
    const lane = this.writer.pickLane();
    let byDb = this.routes.get(lane);
    if (!byDb) this.routes.set(lane, (byDb = new Map()));
    let route = byDb.get(db);
    if (!route) {
      route = {
        send: (encoded, done) => lane.sendEncoded(db, encoded, done),
        sendBatch: (encoded, done) => lane.sendBatch(encoded.map((e) => ({ db, encoded: e })), done),
      };
      byDb.set(db, route);
    }
    return route;
  }

  broadcast(encoded: Buffer, done: ReplyHandler): void {
    this.writer.lanes[0]!.sendRaw(encoded, done);
  }

  drain(): Promise<void> {
    return this.writer.drain();
  }

  close(): void {
    this.writer.close();
  }
}
