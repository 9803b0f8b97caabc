import { slotOf } from '../common/slots.js';
import type { KeyRoute, Target } from '../target/target.js';
import type { ReplyHandler, TargetInfo } from '../target/writer.js';
import type { ClusterRouter } from './router.js';

/** A cluster target as the snapshot sees it: keys routed by slot, server-wide commands to every master. */
export class ClusterTarget implements Target {
  readonly kind = 'cluster';
  private readonly routes: (KeyRoute | undefined)[] = new Array(16384);

  constructor(
    readonly router: ClusterRouter,
    readonly info: TargetInfo,
  ) {}

  /** A cluster has db 0 only: the caller maps every source db there (or refuses). */
  route(_db: number, key: Buffer): KeyRoute {
    const slot = slotOf(key);
    let route = this.routes[slot];
    if (!route) {
      const router = this.router;
      route = {
        send: (encoded, done) => router.send(slot, encoded, done),
        sendBatch: (encoded, done) => router.sendBatch(slot, encoded, done),
      };
      this.routes[slot] = route;
    }
    return route;
  }

  broadcast(encoded: Buffer, done: ReplyHandler): void {
    const masters = this.router.masters();
    let pending = masters.length;
    let firstError: string | null = null;
    for (const m of masters) {
      this.router.sendToMaster(m, encoded, (error) => {
        firstError ??= error;
        if (--pending === 0) done(firstError, undefined);
      });
    }
  }

  drain(): Promise<void> {
    return this.router.drain();
  }

  close(): void {
    this.router.close();
  }
}
