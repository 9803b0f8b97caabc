import type { Logger } from 'pino';
import type { Fence, HeldLease, TaskCommand, TaskStore } from './store.js';

/** This node, as it takes part in sharing the tasks of one store. */
export interface NodeIdentity {
  id: string;
  /** host:port of its API. */
  listen: string;
  /** Leases it holds at most. */
  capacity: number;
  /** How long a lease lasts without a heartbeat (default 15 s). */
  leaseMs: number;
}

export interface LeaseHandlers {
  /** The node now holds this task's lease (a new claim, or its own from a previous run). */
  claimed(taskId: string, fence: Fence, how: 'reclaimed' | 'claimed'): Promise<void>;
  /** The lease is gone (expired, another node has it): stop the task's work at once, write nothing. */
  lost(taskId: string): void;
  /** A command another node queued for a task this node holds. */
  command(command: TaskCommand): Promise<void>;
  /**
   * Leases were renewed: each worker may keep writing until `validUntil` (this host's clock),
   * a margin before the store lets another node claim its task.
   */
  renewed(validUntil: number): void;
}

/**
 * The node's side of the leases: a heartbeat that renews them (every third of the lease), a
 * poll for commands and for tasks to claim (about every second), and the fair share that
 * decides how many to claim: the active tasks spread over the live nodes, never more than the
 * node's capacity. A node that cannot renew in time gives its tasks up before the store does.
 */
export class NodeLeases {
  private readonly held = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private lastHeartbeat = 0;
  /** When the last successful heartbeat started (this host's clock). */
  private renewedAt = 0;
  private stopped = false;
  /** Writes the store refused because their lease was stale (a paused node waking up). */
  staleWrites = 0;

  constructor(
    private readonly store: TaskStore,
    readonly node: NodeIdentity,
    private readonly statuses: readonly string[],
    private readonly logger: Logger,
    private readonly handlers: LeaseHandlers,
  ) {}

  get tickMs(): number {
    return Math.max(100, Math.min(1000, Math.floor(this.node.leaseMs / 5)));
  }

  /** How long a worker may go on after a renewal that started at `at`: three quarters of the lease. */
  private validUntil(at: number): number {
    return at + Math.floor((this.node.leaseMs * 3) / 4);
  }

  /** Takes back this node's own leases from a previous run, claims its share, then keeps going. */
  async start(): Promise<void> {
    const started = Date.now();
    const mine = await this.store.reclaimLeases(this.node.id, this.node.leaseMs);
    await this.store.heartbeat(this.node, this.node.leaseMs);
    this.renewedAt = this.lastHeartbeat = started;
    for (const l of mine) {
      this.held.set(l.taskId, l.token);
      await this.handlers.claimed(l.taskId, { nodeId: this.node.id, token: l.token }, 'reclaimed');
    }
    await this.claimShare();
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
  }

  fence(taskId: string): Fence | undefined {
    const token = this.held.get(taskId);
    return token === undefined ? undefined : { nodeId: this.node.id, token };
  }

  /** The worker deadline for a task just claimed. */
  deadline(): number {
    return this.validUntil(this.renewedAt);
  }

  heldTasks(): string[] {
    return [...this.held.keys()];
  }

  /** Claims one given task for this node now (configure, restart, import), within the fair share unless `force`. */
  async claimNow(taskId: string, force = false): Promise<Fence | null> {
    if (!force && !(await this.roomForMore())) return null;
    const [l] = await this.store.claimTasks(this.node.id, this.statuses, 1, this.node.leaseMs, taskId);
    if (!l) return null;
    this.held.set(l.taskId, l.token);
    return { nodeId: this.node.id, token: l.token };
  }

  /** Gives a lease up (its task ended): another node may take the task when it is restarted. */
  async release(taskId: string): Promise<void> {
    const fence = this.fence(taskId);
    if (!fence) return;
    this.held.delete(taskId);
    await this.store.releaseLease(taskId, fence).catch((e: Error) => this.logger.warn({ taskId, err: e.message }, 'could not release a lease (it expires by itself)'));
  }

  /** Forgets a lease the store says is no longer ours. */
  forget(taskId: string): void {
    if (this.held.delete(taskId)) this.handlers.lost(taskId);
  }

  private async roomForMore(): Promise<boolean> {
    return (await this.share()) > this.held.size;
  }

  /** The most leases this node should hold now: its part of the active tasks, within its capacity. */
  private async share(): Promise<number> {
    const load = await this.store.load(this.statuses, this.node.leaseMs);
    return Math.min(this.node.capacity, Math.ceil(load.tasks / Math.max(1, load.nodes)));
  }

  private async claimShare(): Promise<void> {
    const want = (await this.share()) - this.held.size;
    if (want <= 0) return;
    const claimed: HeldLease[] = await this.store.claimTasks(this.node.id, this.statuses, want, this.node.leaseMs);
    for (const l of claimed) {
      this.held.set(l.taskId, l.token);
      await this.handlers.claimed(l.taskId, { nodeId: this.node.id, token: l.token }, 'claimed');
    }
  }

  tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? Promise.resolve();
    this.ticking = this.tickOnce()
      .catch((e: Error) => this.logger.warn({ err: e.message }, 'lease heartbeat failed'))
      .finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async tickOnce(): Promise<void> {
    const now = Date.now();
    // Could not renew in time (the database is away, or this process was paused): give every
    // task up before the store lets another node claim it.
    if (this.held.size > 0 && now > this.validUntil(this.renewedAt)) {
      this.logger.warn({ tasks: this.held.size }, 'leases not renewed in time: stopping their workers');
      for (const taskId of [...this.held.keys()]) this.forget(taskId);
    }
    if (now - this.lastHeartbeat >= this.node.leaseMs / 3) {
      this.lastHeartbeat = now;
      const renewed = await this.store.heartbeat(this.node, this.node.leaseMs);
      const tokens = new Map(renewed.map((l) => [l.taskId, l.token]));
      for (const [taskId, token] of [...this.held]) {
        if (tokens.get(taskId) !== token) {
          this.logger.warn({ taskId }, 'lease lost (expired or taken by another node): stopping its worker');
          this.forget(taskId);
        }
      }
      this.renewedAt = now;
      this.handlers.renewed(this.validUntil(now));
    }
    for (const c of await this.store.takeCommands(this.node.id)) await this.handlers.command(c);
    if (!this.stopped) await this.claimShare();
  }
}
