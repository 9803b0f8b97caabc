import type { Logger } from 'pino';
import { keysOf } from '../cluster/command-keys.js';
import { planForCluster, planTransaction, type Plan } from '../cluster/split.js';
import { executeRewrite } from '../cluster/rewrite-executor.js';
import { slotTag } from '../cluster/slot-tags.js';
import { slotOf } from '../cluster/split.js';
import type { StreamCommand } from '../resp/command-stream.js';
import { encodeCommand } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { ClusterRouter } from '../target/cluster-router.js';
import type { DbMapper, DbPlacement } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import { OffsetTracker } from './offset-tracker.js';
import type { StreamSink } from './shard-sync.js';
import type { StreamStats } from './stats.js';

export interface ClusterStreamApplierOptions {
  dropFlush?: boolean;
  logger: Logger;
  /** Exactly-once across restarts: per-slot checkpoints written with each write. */
  checkpoint?: ClusterCheckpointOptions;
}

/**
 * Checkpoints on a cluster target. A MULTI cannot span slots, so each slot a write lands in
 * gets its own checkpoint key (in that slot), set in the same MULTI/EXEC as the write: after a
 * crash, `slots` says for each slot the offset up to which its writes are applied, and a
 * resumed stream skips, slot by slot, what is already there. A `floor` key (the offset up to
 * which everything is applied) is where the resumed stream starts.
 */
export interface ClusterCheckpointOptions {
  /** `<prefix>:floor` and `<prefix>:slot:{tag}` keys. */
  prefix: string;
  replid(): string | null;
  /** Per-slot applied offsets found on the target (a restart), else empty. */
  slots: Map<number, number>;
}

export function slotCheckpointKey(prefix: string, slot: number): Buffer {
  return Buffer.from(`${prefix}:slot:{${slotTag(slot)}}`);
}

const DROPPED = new Set(['ping', 'replconf']);

/**
 * Applies a source's command stream to a cluster target. Each command is planned
 * (src/cluster/split.ts): routed to its slot's master as is, split per slot (MSET, DEL...),
 * sent to every master (FLUSHALL, FUNCTION LOAD...), or rewritten into steps that read the
 * target after a barrier (RENAME across slots, SUNIONSTORE...). Transactions stay atomic when
 * their keys share a slot, and are split per slot otherwise (documented loss of atomicity).
 *
 * Replies come back from several masters out of order, so the applied offset goes through an
 * OffsetTracker: it advances only over commands whose every part has been answered.
 */
export class ClusterStreamApplier implements StreamSink {
  private sourceDb = 0;
  private placement: DbPlacement | null;
  private inTransaction = false;
  private queued: Buffer[][] = [];
  private readonly tracker: OffsetTracker;
  selectedDbAtApplied = 0;

  constructor(
    private readonly router: ClusterRouter,
    private readonly dbs: DbMapper,
    private readonly stats: StreamStats,
    private readonly errors: WriteErrorLog,
    applied: (offset: number) => void,
    private readonly options: ClusterStreamApplierOptions,
  ) {
    this.placement = dbs.placement(0);
    this.tracker = new OffsetTracker((offset, db) => {
      this.selectedDbAtApplied = db;
      applied(offset);
      this.floorDue(offset, db);
    });
  }

  private lastFloorAt = 0;

  /** Writes the floor checkpoint at most every 200 ms (it only bounds how far back a resume starts). */
  private floorDue(offset: number, db: number, force = false): void {
    const cp = this.options.checkpoint;
    const replid = cp?.replid();
    if (!cp || !replid) return;
    const now = Date.now();
    if (!force && now - this.lastFloorAt < 200) return;
    this.lastFloorAt = now;
    const key = Buffer.from(`${cp.prefix}:floor`);
    this.router.send(slotOf(key), encodeCommand(['SET', key, `${replid} ${offset} ${db}`]), () => undefined);
  }

  /** A write already on the target before a restart (its slot's checkpoint is past it). */
  private alreadyApplied(slot: number, offset: number): boolean {
    const done = this.options.checkpoint?.slots.get(slot);
    return done !== undefined && offset <= done;
  }

  /** Sends `commands` to `slot` in one MULTI/EXEC with the slot's checkpoint (exactly-once mode). */
  private sendWithCheckpoint(slot: number, commands: Buffer[], offset: number, done: (error: string | null, reply: Reply | undefined) => void): void {
    const cp = this.options.checkpoint!;
    const replid = cp.replid();
    const all = replid ? [...commands, encodeCommand(['SET', slotCheckpointKey(cp.prefix, slot), `${replid} ${offset} ${this.sourceDb}`])] : commands;
    this.router.sendTransaction(slot, all, (error, reply) => {
      if (!error) cp.slots.set(slot, offset);
      done(error, Array.isArray(reply) && replid ? reply.slice(0, commands.length) : reply);
    });
  }

  apply(command: StreamCommand): void | Promise<void> {
    const { name } = command;
    this.stats.receivedOffset = command.offsetAfter;
    if (DROPPED.has(name) || (name === 'publish' && command.args[1]?.toString('latin1') === '__sentinel__:hello') || (this.options.dropFlush && (name === 'flushall' || name === 'flushdb'))) {
      this.stats.commandsDropped++;
      return this.pass(command.offsetAfter);
    }
    if (name === 'select') {
      this.sourceDb = Number(command.args[1]?.toString('latin1'));
      this.placement = this.dbs.placement(this.sourceDb);
      return this.pass(command.offsetAfter);
    }
    if (name === 'multi') {
      this.inTransaction = true;
      this.queued = [];
      return;
    }
    if (name === 'exec') return this.exec(command.offsetAfter);
    if (this.placement === null) {
      // A source db that is not migrated.
      this.stats.commandsDropped++;
      return this.pass(command.offsetAfter);
    }
    const args = this.withPrefix(command.args);
    if (this.inTransaction) {
      this.queued.push(args);
      return;
    }
    this.stats.commandsForwarded++;
    const done = this.tracker.take(command.offsetAfter, this.sourceDb);
    return this.run(planForCluster(args), args, done, command.offsetAfter);
  }

  private pass(offset: number): void {
    if (this.inTransaction) return;
    this.tracker.take(offset, this.sourceDb)();
  }

  /** Adds the source db's key prefix to every key argument. */
  private withPrefix(args: Buffer[]): Buffer[] {
    const prefix = this.placement?.prefix;
    if (!prefix) return args;
    const spec = keysOf(args);
    if (spec.kind !== 'keys') return args;
    const out = args.slice();
    for (const i of spec.positions) out[i] = Buffer.concat([prefix, args[i]!]);
    return out;
  }

  private run(plan: Plan, args: Buffer[], done: () => void, offset = 0): void | Promise<void> {
    const checkpointed = this.options.checkpoint !== undefined && offset > 0;
    const name = args[0]!.toString('latin1').toUpperCase();
    const key = args[1] ?? null;
    const record = (error: string | null): void => {
      if (error) this.errors.record(0, key, name, error);
    };
    switch (plan.kind) {
      case 'single':
        if (checkpointed) {
          if (this.alreadyApplied(plan.slot, offset)) return done();
          this.sendWithCheckpoint(plan.slot, [encodeCommand(plan.args)], offset, (error, reply) => {
            record(error ?? (Array.isArray(reply) && reply[0] instanceof ReplyError ? reply[0].message : null));
            done();
          });
          return this.room();
        }
        this.router.send(plan.slot, encodeCommand(plan.args), (error) => {
          record(error);
          done();
        });
        return this.room();
      case 'split': {
        const parts = checkpointed ? plan.parts.filter((p) => !this.alreadyApplied(p.slot, offset)) : plan.parts;
        let pending = parts.length;
        for (const part of parts) {
          const finish = (error: string | null): void => {
            record(error);
            if (--pending === 0) done();
          };
          if (checkpointed) {
            this.sendWithCheckpoint(part.slot, [encodeCommand(part.args)], offset, (error, reply) =>
              finish(error ?? (Array.isArray(reply) && reply[0] instanceof ReplyError ? reply[0].message : null)),
            );
          } else this.router.send(part.slot, encodeCommand(part.args), finish);
        }
        if (pending === 0) done();
        return this.room();
      }
      case 'broadcast':
      case 'any': {
        const masters = plan.kind === 'any' ? this.router.masters().slice(0, 1) : this.router.masters();
        let pending = masters.length;
        const encoded = encodeCommand(plan.args);
        for (const m of masters) {
          this.router.sendToMaster(m, encoded, (error) => {
            record(error);
            if (--pending === 0) done();
          });
        }
        if (pending === 0) done();
        return this.room();
      }
      case 'rewrite':
        // A barrier: the steps read the target, so everything before must be applied first.
        // (With checkpoints, the floor is written right after: a rewrite spans slots and has
        // no atomic checkpoint; only a crash in the middle of one can repeat it.)
        return this.router
          .drain()
          .then(() => executeRewrite(plan.steps, this.router))
          .then(
            () => done(),
            (e: Error) => {
              record(e.message);
              done();
            },
          )
          .then(() => {
            if (checkpointed) this.floorDue(offset, this.sourceDb, true);
          });
      case 'unsupported':
        record(`cannot be applied to a cluster target: ${plan.reason}`);
        done();
        return;
    }
  }

  private exec(offset: number): void | Promise<void> {
    this.inTransaction = false;
    this.stats.transactions++;
    const commands = this.queued;
    this.queued = [];
    const done = this.tracker.take(offset, this.sourceDb);
    if (commands.length === 0) {
      done();
      return;
    }
    this.stats.commandsForwarded += commands.length;
    const plan = planTransaction(commands);
    const report = (group: readonly (readonly Buffer[])[], error: string | null, reply: Reply | undefined): void => {
      if (error) this.errors.record(0, group[0]?.[1] ?? null, `EXEC (${group.length} commands)`, error);
      else if (Array.isArray(reply)) {
        reply.forEach((r, i) => {
          if (r instanceof ReplyError) this.errors.record(0, group[i]?.[1] ?? null, group[i]?.[0]?.toString('latin1').toUpperCase() ?? 'EXEC', r.message);
        });
      }
    };
    const transactions: { slot: number | null; commands: readonly (readonly Buffer[])[] }[] = [];
    switch (plan.kind) {
      case 'atomic':
        transactions.push({ slot: plan.slot, commands: plan.commands });
        break;
      case 'split':
        transactions.push(...plan.groups);
        break;
      case 'any':
        transactions.push({ slot: null, commands: plan.commands });
        break;
      case 'unsupported':
        this.errors.record(0, commands[plan.index]?.[1] ?? null, 'EXEC', `cannot be applied to a cluster target: ${plan.reason}`);
        done();
        return;
      case 'sequence':
        // Holds a rewrite or a broadcast: each command on its own, in order, no atomicity.
        return (async () => {
          for (let i = 0; i < plan.plans.length; i++) {
            await new Promise<void>((resolve) => {
              const r = this.run(plan.plans[i]!, commands[i]!, resolve, offset);
              if (r) void r.then(undefined, () => resolve());
            });
          }
          done();
        })();
    }
    const checkpointed = this.options.checkpoint !== undefined;
    const todo = checkpointed ? transactions.filter((t) => t.slot === null || !this.alreadyApplied(t.slot, offset)) : transactions;
    let pending = todo.length;
    for (const t of todo) {
      const encoded = t.commands.map((c) => encodeCommand(c));
      const finish = (error: string | null, reply: Reply | undefined): void => {
        report(t.commands, error, reply);
        if (--pending === 0) done();
      };
      if (checkpointed && t.slot !== null) {
        this.sendWithCheckpoint(t.slot, encoded, offset, finish);
        continue;
      }
      if (t.slot === null) {
        const master = this.router.masters()[0]!;
        for (const c of [encodeCommand(['MULTI']), ...encoded]) this.router.sendToMaster(master, c, () => undefined);
        this.router.sendToMaster(master, encodeCommand(['EXEC']), finish);
      } else this.router.sendTransaction(t.slot, encoded, finish);
    }
    if (pending === 0) done();
    return this.room();
  }

  /** The source link broke: drop a half-received transaction, wait for what was sent. */
  async interrupted(): Promise<void> {
    this.inTransaction = false;
    this.queued = [];
    await this.router.drain();
    this.sourceDb = this.selectedDbAtApplied;
    this.placement = this.dbs.placement(this.sourceDb);
  }

  private room(): void | Promise<void> {
    if (this.router.full) return this.router.waitForRoom();
  }
}
