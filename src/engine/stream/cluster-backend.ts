import type { Logger } from 'pino';
import { planForCluster, planTransaction, type Plan } from '../../cluster/split.js';
import { executeRewrite } from '../../cluster/rewrite-executor.js';
import type { ClusterRouter } from '../../cluster/router.js';
import { slotOf } from '../../common/slots.js';
import { encodeCommand, type Arg } from '../../resp/encode.js';
import { ReplyError, type Reply } from '../../resp/reply-decoder.js';
import type { BatchCommand } from '../../target/batch.js';
import { refusalKind } from '../../target/refusals.js';
import { BatchChannel, type ChannelWrite, type RefusalPolicy } from '../batch-channel.js';
import { clusterFloorKey, clusterSlotKey, formatCheckpoint } from '../checkpoints.js';
import { RunWrite, type StreamUnit, type StreamWrite } from './front-end.js';
import type { Sequencer, StreamBackend } from './sequencer.js';

/**
 * Checkpoints on a cluster target. A MULTI cannot span slots, so each slot a batch lands in
 * gets its own checkpoint key (in that slot), set in the same MULTI/EXEC as the batch: after a
 * crash, `slots` says for each slot the offset up to which its writes are applied, and a resumed
 * stream skips, slot by slot, what is already there. A `floor` key (the offset up to which
 * everything is applied) is where the resumed stream starts.
 */
export interface ClusterCheckpoint {
  /** `<prefix>:floor` and `<prefix>:slot:{tag}` keys. */
  prefix: Buffer;
  replid(): string | null;
  /** Per-slot applied offsets found on the target (a restart), else empty. */
  slots: Map<number, number>;
}

/** How often the floor checkpoint is written at most (it only bounds where a resume starts). */
const FLOOR_INTERVAL_MS = 200;

/**
 * A cluster target. Each unit is planned once (src/cluster/split.ts) and its writes go to the
 * ordering domain of their slot: one BatchChannel per slot (created when used), so writes to a
 * slot keep the source's order while slots proceed independently. A source transaction whose
 * keys share a slot stays one MULTI/EXEC; otherwise each slot gets its part (documented loss of
 * atomicity across slots). Commands that must see everything before them applied — rewrites
 * across slots (RENAME, SUNIONSTORE...), broadcasts (FLUSHALL, FUNCTION LOAD), transactions that
 * hold one — are barriers: they wait for every earlier unit, run alone, and nothing later is
 * handed over before they end.
 */
export class ClusterStreamBackend implements StreamBackend {
  private readonly channels = new Map<number, BatchChannel<StreamUnit>>();
  /** Key-less commands that any master can take (PUBLISH): one ordered channel to the first master. */
  private readonly anyChannel: BatchChannel<StreamUnit>;
  private sequencer: Sequencer | null = null;
  private lastFloorAt = 0;
  private stopped = false;

  constructor(
    private readonly router: ClusterRouter,
    private readonly policy: RefusalPolicy,
    private readonly logger: Logger,
    private readonly checkpoint: ClusterCheckpoint | null,
  ) {
    // Key-less commands run on any node: the owner of slot 0 takes them, in order.
    this.anyChannel = new BatchChannel<StreamUnit>({
      transport: (commands, done) => this.router.sendBatch(0, commands.map((c) => c.encoded), done),
      policy,
    });
  }

  /** The sequencer this back end serves (barriers wait on it). */
  attach(sequencer: Sequencer): void {
    this.sequencer = sequencer;
  }

  dispatch(unit: StreamUnit, done: () => void): void | Promise<void> {
    const writes = commandWrites(unit);
    if (!unit.transaction) {
      const write = writes[0]!;
      const plan = planForCluster(write.args);
      switch (plan.kind) {
        case 'single':
          return this.toSlots(unit, [{ slot: plan.slot, writes: [this.planned(write, plan.args)] }], done);
        case 'split':
          return this.toSlots(unit, plan.parts.map((p) => ({ slot: p.slot, writes: [this.planned(write, p.args)] })), done);
        case 'any':
          this.anyChannel.add({ writes: [this.planned(write, plan.args)], done, tag: unit });
          return;
        case 'unsupported':
          this.unsupported(write, plan.reason);
          done();
          return;
        case 'broadcast':
        case 'rewrite':
          return this.barrier(unit, done, () => this.runAlone(plan, write));
      }
    }
    const plan = planTransaction(writes.map((w) => w.args));
    switch (plan.kind) {
      case 'atomic':
        return this.toSlots(unit, [{ slot: plan.slot, writes: plan.commands.map((c, i) => this.planned(writes[i]!, c)) }], done);
      case 'split':
        return this.toSlots(unit, plan.groups.map((g) => ({ slot: g.slot, writes: g.commands.map((c) => this.plannedOf(writes, c)) })), done);
      case 'any':
        this.anyChannel.add({ writes: plan.commands.map((c, i) => this.planned(writes[i]!, c)), done, tag: unit });
        return;
      case 'unsupported':
        this.unsupported(writes[plan.index] ?? writes[0]!, plan.reason);
        done();
        return;
      case 'sequence':
        // Holds a rewrite or a broadcast: each command on its own, in order, no atomicity.
        return this.barrier(unit, done, async () => {
          for (let i = 0; i < plan.plans.length; i++) await this.runAlone(plan.plans[i]!, writes[i]!);
        });
    }
  }

  /** The unit's parts, each to its slot's channel; done when the last part is. */
  private toSlots(unit: StreamUnit, parts: { slot: number; writes: ChannelWrite[] }[], done: () => void): void {
    const todo = this.checkpoint ? parts.filter((p) => !this.alreadyApplied(p.slot, unit.endOffset)) : parts;
    if (todo.length === 0) {
      done();
      return;
    }
    let pending = todo.length;
    const partDone = (): void => {
      if (--pending === 0) done();
    };
    for (const part of todo) this.channel(part.slot).add({ writes: part.writes, done: partDone, tag: unit });
  }

  private channel(slot: number): BatchChannel<StreamUnit> {
    let channel = this.channels.get(slot);
    if (!channel) {
      const cp = this.checkpoint;
      channel = new BatchChannel<StreamUnit>({
        transport: (commands, done) => this.router.sendBatch(slot, commands.map((c) => c.encoded), done),
        policy: this.policy,
        checkpoint: cp
          ? (unit): BatchCommand | null => {
              const replid = cp.replid();
              if (replid === null) return null;
              return { db: 0, encoded: encodeCommand(['SET', clusterSlotKey(cp.prefix, slot), formatCheckpoint(replid, unit.endOffset, unit.dbAfter)]) };
            }
          : undefined,
      });
      this.channels.set(slot, channel);
    }
    return channel;
  }

  /** A write already on the target before a restart (its slot's checkpoint is past it). */
  private alreadyApplied(slot: number, offset: number): boolean {
    const done = this.checkpoint?.slots.get(slot);
    return done !== undefined && offset <= done;
  }

  /** A write as planned for the cluster (MSETNX becomes MSET, RESTORE-ASKING becomes RESTORE...). */
  private planned(write: StreamWrite, args: readonly Buffer[]): ChannelWrite {
    if (args === write.args) return write;
    return { db: 0, encoded: encodeCommand(args), name: write.name, key: args[1] ?? write.key };
  }

  /** A part of a split transaction: the original write it came from names it in reports. */
  private plannedOf(writes: readonly StreamWrite[], args: readonly Buffer[]): ChannelWrite {
    const origin = writes.find((w) => w.args === args);
    if (origin) return origin;
    return { db: 0, encoded: encodeCommand(args), name: args[0]?.toString('latin1').toUpperCase() ?? '?', key: args[1] ?? null };
  }

  private unsupported(write: StreamWrite, reason: string): void {
    this.policy.refused(write, `cannot be applied to a cluster target: ${reason}`);
  }

  /** Waits for everything before the unit, runs it alone, then records the floor (no atomic checkpoint here). */
  private async barrier(unit: StreamUnit, done: () => void, run: () => Promise<void>): Promise<void> {
    await this.sequencer!.allBefore(unit.seq);
    if (!this.stopped) await run();
    done();
    this.writeFloor(unit.endOffset, unit.dbAfter, true);
  }

  /** One plan, step by step, every reply awaited (inside a barrier). */
  private async runAlone(plan: Plan, write: StreamWrite): Promise<void> {
    const report = (error: string | null): void => {
      if (error !== null) this.policy.refused(write, error);
    };
    switch (plan.kind) {
      case 'single':
        return report(await this.call((reply) => this.router.send(plan.slot, encodeCommand(plan.args), reply)));
      case 'split':
        for (const part of plan.parts) report(await this.call((reply) => this.router.send(part.slot, encodeCommand(part.args), reply)));
        return;
      case 'any': {
        const master = this.router.masters()[0]!;
        return report(await this.call((reply) => this.router.sendToMaster(master, encodeCommand(plan.args), reply)));
      }
      case 'broadcast':
        for (const master of this.router.masters()) report(await this.call((reply) => this.router.sendToMaster(master, encodeCommand(plan.args), reply)));
        return;
      case 'rewrite':
        try {
          await executeRewrite(plan.steps, { call: (slot, args) => this.callReply(slot, args) });
        } catch (e) {
          report((e as Error).message);
        }
        return;
      case 'unsupported':
        return this.unsupported(write, plan.reason);
    }
  }

  /**
   * Sends one command (through `send`) and resolves with its error text or null; a passing
   * refusal is sent again after a pause while the policy says so, holding every channel.
   */
  private async call(send: (reply: (error: string | null, reply: Reply | undefined) => void) => void): Promise<string | null> {
    for (let attempt = 1; ; attempt++) {
      const error = await new Promise<string | null>((resolve) => send((e) => resolve(e)));
      if (error === null || refusalKind(error) !== 'passing' || !this.policy.retryPassing || this.stopped) {
        if (attempt > 1) this.policy.release(this);
        return error;
      }
      this.policy.hold(this, error, attempt);
      await new Promise((r) => setTimeout(r, this.policy.backoffMs(attempt)));
    }
  }

  /** A rewrite step: its reply, with passing refusals retried like any other write. */
  private async callReply(slot: number, args: readonly Arg[]): Promise<Reply> {
    let result: Reply = null;
    const error = await this.call((reply) =>
      this.router.send(slot, encodeCommand(args), (e, r) => {
        result = r ?? null;
        reply(e, r);
      }),
    );
    if (error !== null) throw new ReplyError(error);
    return result;
  }

  /** The applied offset moved: record the floor now and then. */
  applied(offset: number, db: number): void {
    this.writeFloor(offset, db, false);
  }

  private writeFloor(offset: number, db: number, force: boolean): void {
    const cp = this.checkpoint;
    const replid = cp?.replid();
    if (!cp || !replid || this.stopped) return;
    const now = Date.now();
    if (!force && now - this.lastFloorAt < FLOOR_INTERVAL_MS) return;
    this.lastFloorAt = now;
    const key = clusterFloorKey(cp.prefix);
    this.router.send(slotOf(key), encodeCommand(['SET', key, formatCheckpoint(replid, offset, db)]), () => undefined);
  }

  private async settleChannels(): Promise<void> {
    await Promise.all([...this.channels.values()].map((c) => c.settle()));
    await this.anyChannel.settle();
  }

  async settle(): Promise<void> {
    await this.settleChannels();
    await this.router.drain();
  }

  abandon(): void {
    this.stopped = true;
    for (const c of this.channels.values()) c.abandon();
    this.anyChannel.abandon();
  }
}

/** A cluster plans every command: the front end never gathers runs for it (`coalesce` is off). */
function commandWrites(unit: StreamUnit): StreamWrite[] {
  if (unit.writes[0] instanceof RunWrite) throw new Error('internal: a run of commands reached the cluster back end');
  return unit.writes as StreamWrite[];
}
