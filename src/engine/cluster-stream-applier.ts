import type { Logger } from 'pino';
import { keysOf } from '../cluster/command-keys.js';
import { planForCluster, planTransaction, type Plan } from '../cluster/split.js';
import { executeRewrite } from '../cluster/rewrite-executor.js';
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
    return this.run(planForCluster(args), args, done);
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

  private run(plan: Plan, args: Buffer[], done: () => void): void | Promise<void> {
    const name = args[0]!.toString('latin1').toUpperCase();
    const key = args[1] ?? null;
    const record = (error: string | null): void => {
      if (error) this.errors.record(0, key, name, error);
    };
    switch (plan.kind) {
      case 'single':
        this.router.send(plan.slot, encodeCommand(plan.args), (error) => {
          record(error);
          done();
        });
        return this.room();
      case 'split': {
        let pending = plan.parts.length;
        for (const part of plan.parts) {
          this.router.send(part.slot, encodeCommand(part.args), (error) => {
            record(error);
            if (--pending === 0) done();
          });
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
        return this.router
          .drain()
          .then(() => executeRewrite(plan.steps, this.router))
          .then(
            () => done(),
            (e: Error) => {
              record(e.message);
              done();
            },
          );
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
              const r = this.run(plan.plans[i]!, commands[i]!, resolve);
              if (r) void r.then(undefined, () => resolve());
            });
          }
          done();
        })();
    }
    let pending = transactions.length;
    for (const t of transactions) {
      const encoded = t.commands.map((c) => encodeCommand(c));
      const finish = (error: string | null, reply: Reply | undefined): void => {
        report(t.commands, error, reply);
        if (--pending === 0) done();
      };
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
