import type { Endpoint } from '../common/endpoint.js';
import type { Deployment } from '../cluster/topology-types.js';
import { ClusterRouter } from './cluster-router.js';
import { slotOf } from '../cluster/split.js';
import { RedisConnection } from '../resp/connection.js';
import { Lane, TargetWriter, probeTarget, type ReplyHandler, type TargetInfo } from './writer.js';

/** Where the commands of one key go, in order: a lane and db (standalone) or a slot (cluster). */
export interface KeyRoute {
  send(encoded: Buffer, done: ReplyHandler): void;
  readonly full: boolean;
  waitForRoom(): Promise<void>;
}

/**
 * The target as the snapshot sees it: route a key's commands, reach every master, drain.
 * The command stream uses the concrete kinds (a standalone lane, the cluster router).
 */
export type Target = StandaloneTarget | ClusterTarget;

export class StandaloneTarget {
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
        send: (encoded, done) => void lane.sendEncoded(db, encoded, done),
        get full() {
          return lane.full;
        },
        waitForRoom: () => lane.waitForRoom(),
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

export class ClusterTarget {
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
        get full() {
          return router.full;
        },
        waitForRoom: () => router.waitForRoom(),
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

/** Connects to what the deployment turned out to be. */
export async function openTarget(deployment: Deployment, credentials: Pick<Endpoint, 'user' | 'password' | 'tls'>, onConnectionLost: (e: Error) => void, lanes = 4): Promise<Target> {
  if (deployment.kind === 'standalone') {
    return new StandaloneTarget(await TargetWriter.open(deployment.master, { lanes, onConnectionLost }));
  }
  const router = new ClusterRouter(credentials, deployment.shards, onConnectionLost);
  const first = deployment.shards[0]!.master;
  const probe = await RedisConnection.connect({ host: first.host, port: first.port, ...credentials, name: 'ferry-probe' });
  try {
    const info = await probeTarget(probe);
    await router.connectAll();
    return new ClusterTarget(router, info);
  } catch (e) {
    router.close();
    throw e;
  } finally {
    void probe.close().catch(() => undefined);
  }
}
