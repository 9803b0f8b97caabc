/**
 * Built-in verification: does the target hold what the source holds?
 *
 * Round 1 compares everything, in both directions:
 *  - every source key (every db of a standalone source, every master of a cluster, by SCAN)
 *    against its place on the target: placement db, prefix + name, the master owning that
 *    name's slot on a cluster target. Keys of source dbs the migration leaves out
 *    (DbMapper.placement → null) are not compared;
 *  - every target key (every db with keys, every master) that no source key accounts for:
 *    its name is mapped back (the target db's source dbs, prefix stripped) and looked up on
 *    the source; absent there, it is 'extra';
 *  - function libraries, on every target master.
 * Ferry's own checkpoint keys on the target (`__ferry:checkpoint:*`) are not the user's data
 * and are left out of the target side.
 * Later rounds (after roundDelayMs) re-check only what differed, and a key is reported only
 * if it differs in every round: during an incremental migration the keys being written differ
 * for a moment and converge, real differences stay.
 *
 * What cannot be mapped back: a target key in a db no migrated source db maps to, or whose
 * name starts with none of the prefixes of the source dbs mapped to its db. Such keys are
 * reported as 'extra' under the target db and target name, with the reason in the detail.
 * When several source dbs share a target db (merged), a target key is extra only if none of
 * them has it, and is reported under the first (longest prefix, then lowest db).
 *
 * Bounded memory whatever the data: the SCANs are held back by a pool of KEY_CONCURRENCY keys
 * being compared, each key is read in chunks (compare-key.ts), and at most RECHECK_LIMIT
 * differing keys are remembered for later rounds; differences past that are final at once
 * (counted, listed while the list has room) and not re-checked.
 */

import { printable } from '../common/printable.js';
import { CHECKPOINT_KEY_PREFIX } from '../engine/checkpoints.js';
import { DbMapper } from '../engine/db-map.js';
import { ReplyError } from '../resp/reply-decoder.js';
import { compareKeyPair, type CompareContext } from './compare-key.js';
import { compareFunctions } from './functions.js';
import { Semaphore, TaskPool, delay } from './pool.js';
import { asBuffer, asInt, asText, bytesKey, scanReply } from './replies.js';
import { Side } from './sides.js';
import {
  DIFFERENCE_KINDS,
  type Difference,
  type DifferenceKind,
  type VerifyOptions,
  type VerifyPhase,
  type VerifyProgress,
  type VerifyReport,
} from './types.js';

/** Keys compared at once (each with a few commands in flight on the shared connections). */
const KEY_CONCURRENCY = 128;
/** Big keys read at once (see compare-key.ts): what bounds the chunk-sized replies held. */
const HEAVY_PERMITS = 4;
const SCAN_COUNT = 1000;
/** Differing keys remembered for re-checking. */
const RECHECK_LIMIT = 100_000;
const PROGRESS_INTERVAL_MS = 250;

const DEFAULT_ROUND_DELAY_MS = 1000;
const DEFAULT_TTL_TOLERANCE_MS = 2000;
const DEFAULT_MAX_REPORTED = 100;
/** Checkpoints of migrations into the target (kept until their task is deleted): not data. */
const FERRY_CHECKPOINT = Buffer.from(CHECKPOINT_KEY_PREFIX, 'latin1');

/** What a remembered difference re-checks. */
type KeyRef =
  /** A source key (or a target key mapped back to one): compared with its target counterpart. */
  | { kind: 'pair'; sdb: number; skey: Buffer }
  /** A target key that maps back to no source db: extra while it exists. */
  | { kind: 'target'; tdb: number; tkey: Buffer; why: string };

interface Entry {
  ref: KeyRef;
  /** The differences of the latest round. */
  diffs: Difference[];
}

/** A source db whose keys land in a given target db. */
interface Candidate {
  sdb: number;
  prefix: Buffer | null;
}

interface Settings {
  rounds: number;
  roundDelayMs: number;
  maxReported: number;
  onProgress: ((p: VerifyProgress) => void) | undefined;
  signal: AbortSignal | undefined;
  onDifference: VerifyOptions['onDifference'];
}

function zeroCounts(): Record<DifferenceKind, number> {
  const c = {} as Record<DifferenceKind, number>;
  for (const k of DIFFERENCE_KINDS) c[k] = 0;
  return c;
}

function refId(ref: KeyRef): string {
  return ref.kind === 'pair' ? `s${ref.sdb}:${bytesKey(ref.skey)}` : `t${ref.tdb}:${bytesKey(ref.tkey)}`;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

export async function verifyDeployments(opts: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  opts.signal?.throwIfAborted();
  const settings: Settings = {
    rounds: Math.max(1, Math.floor(opts.rounds ?? 1)),
    roundDelayMs: Math.max(0, opts.roundDelayMs ?? DEFAULT_ROUND_DELAY_MS),
    maxReported: Math.max(0, Math.floor(opts.maxReported ?? DEFAULT_MAX_REPORTED)),
    onProgress: opts.onProgress,
    signal: opts.signal,
    onDifference: opts.onDifference,
  };
  const sides = await Promise.allSettled([Side.open('source', opts.source), Side.open('target', opts.target)]);
  const [src, tgt] = sides;
  if (src.status === 'rejected' || tgt.status === 'rejected') {
    for (const s of sides) if (s.status === 'fulfilled') s.value.close();
    throw src.status === 'rejected' ? src.reason : (tgt as PromiseRejectedResult).reason;
  }
  const source = src.value;
  const target = tgt.value;
  // Commands have no deadline of their own: an abort closes the connections, so that even a
  // command a stuck server never answers gives way.
  const onAbort = (): void => {
    source.close();
    target.close();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let dbs = opts.dbs ?? new DbMapper();
    // As the migration does: a cluster has db 0 only, so every source db lands there.
    if (target.cluster) dbs = dbs.withForcedDb(0);
    const ctx: CompareContext = {
      ttlToleranceMs: opts.ttlToleranceMs ?? DEFAULT_TTL_TOLERANCE_MS,
      heavy: new Semaphore(HEAVY_PERMITS),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    };
    const run = new Run(source, target, dbs, ctx, settings);
    await run.execute();
    return run.report(Date.now() - started);
  } catch (e) {
    // The closed connections' errors are a consequence: report the abort itself.
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    source.close();
    target.close();
  }
}

class Run {
  private readonly pending = new Map<string, Entry>();
  private readonly overflowCounts = zeroCounts();
  private readonly overflowList: Difference[] = [];
  private overflowKeys = 0;
  private functionDiffs: Difference[] = [];
  private keysChecked = 0;
  private round = 1;
  private roundsRun = 0;
  private phase: VerifyPhase = 'source-keys';
  private lastProgress = 0;
  private readonly candidatesByDb = new Map<number, Candidate[]>();

  constructor(
    private readonly source: Side,
    private readonly target: Side,
    private readonly dbs: DbMapper,
    private readonly ctx: CompareContext,
    private readonly o: Settings,
  ) {}

  async execute(): Promise<void> {
    this.roundsRun = 1;
    this.setPhase('source-keys');
    await this.sourcePass();
    this.setPhase('target-keys');
    await this.targetPass();
    this.setPhase('functions');
    this.functionDiffs = await compareFunctions(this.source, this.target);
    for (const d of this.functionDiffs) await this.o.onDifference?.(d, null);
    for (let r = 2; r <= this.o.rounds; r++) {
      if (this.pending.size === 0 && this.functionDiffs.length === 0) break;
      this.round = r;
      this.setPhase('waiting');
      await delay(this.o.roundDelayMs, this.o.signal);
      this.roundsRun = r;
      this.setPhase('recheck');
      await this.recheckPass();
      if (this.functionDiffs.length > 0) {
        // Libraries are few: compare them all again, keep those that still differ.
        const before = new Set(this.functionDiffs.map((d) => d.key));
        this.functionDiffs = (await compareFunctions(this.source, this.target)).filter((d) => before.has(d.key));
      }
    }
    this.setPhase('done');
  }

  report(durationMs: number): VerifyReport {
    const counts = zeroCounts();
    const differences: Difference[] = [];
    const add = (d: Difference): void => {
      counts[d.kind]++;
      if (differences.length < this.o.maxReported) differences.push(d);
    };
    for (const e of this.pending.values()) for (const d of e.diffs) add(d);
    for (const k of DIFFERENCE_KINDS) counts[k] += this.overflowCounts[k];
    for (const d of this.overflowList) if (differences.length < this.o.maxReported) differences.push(d);
    for (const d of this.functionDiffs) add(d);
    return {
      equal: DIFFERENCE_KINDS.every((k) => counts[k] === 0),
      keysChecked: this.keysChecked,
      rounds: this.roundsRun,
      counts,
      differences,
      durationMs,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Round 1

  private async sourcePass(): Promise<void> {
    const pool = new TaskPool(KEY_CONCURRENCY, this.o.signal);
    for (const sdb of await this.source.keyspaceDbs()) {
      const place = this.dbs.placement(sdb);
      if (place === null) continue;
      await Promise.all(
        this.source.masters.map((_, m) =>
          this.scan(this.source, m, sdb, pool, async (skey) => {
            const diffs = await this.comparePair(sdb, skey);
            this.keysChecked++;
            if (diffs.length > 0) this.note({ kind: 'pair', sdb, skey: Buffer.from(skey) }, diffs);
            if (diffs.length > 0) await this.found(diffs, { db: sdb, key: skey });
          }),
        ),
      );
    }
    await pool.drain();
  }

  private async targetPass(): Promise<void> {
    await this.loadCandidates();
    const pool = new TaskPool(KEY_CONCURRENCY, this.o.signal);
    for (const tdb of await this.target.keyspaceDbs()) {
      await Promise.all(this.target.masters.map((_, m) => this.scan(this.target, m, tdb, pool, (tkey) => this.checkTargetKey(tdb, tkey))));
    }
    await pool.drain();
  }

  /** SCANs one db of one master, handing each key to the pool (which holds the SCAN back). */
  private async scan(side: Side, master: number, db: number, pool: TaskPool, each: (key: Buffer) => Promise<void>): Promise<void> {
    const c = await side.conn(master, db);
    let cursor = '0';
    do {
      this.o.signal?.throwIfAborted();
      const page = scanReply(await c.call(['SCAN', cursor, 'COUNT', SCAN_COUNT]));
      cursor = page.cursor;
      for (const k of page.items) {
        const key = asBuffer(k);
        await pool.submit(() => each(key));
      }
      this.progress();
    } while (cursor !== '0');
  }

  /** Source dbs per target db, from every db number the source has. */
  private async loadCandidates(): Promise<void> {
    this.candidatesByDb.clear();
    for (const sdb of await this.source.dbNumbers()) {
      const p = this.dbs.placement(sdb);
      if (p === null) continue;
      let list = this.candidatesByDb.get(p.db);
      if (list === undefined) this.candidatesByDb.set(p.db, (list = []));
      list.push({ sdb, prefix: p.prefix });
    }
    // The most specific prefix first: with `db1:` and no prefix both on one target db, a
    // `db1:x` is db 1's key x before it is the other db's key `db1:x`.
    for (const list of this.candidatesByDb.values()) {
      list.sort((a, b) => (b.prefix?.length ?? 0) - (a.prefix?.length ?? 0) || a.sdb - b.sdb);
    }
  }

  /** Round 1, target side: is this key accounted for by a source key? */
  private async checkTargetKey(tdb: number, tkey: Buffer): Promise<void> {
    if (startsWith(tkey, FERRY_CHECKPOINT)) return;
    const all = this.candidatesByDb.get(tdb) ?? [];
    const cands = all.filter((c) => c.prefix === null || startsWith(tkey, c.prefix));
    if (cands.length === 0) {
      const why =
        all.length === 0
          ? `no migrated source db maps to target db ${tdb}`
          : `the name starts with no prefix of the source dbs mapped to target db ${tdb}`;
      const diffs = await this.targetOnly(tdb, tkey, why);
      if (diffs.length > 0 && this.note({ kind: 'target', tdb, tkey: Buffer.from(tkey), why }, diffs)) this.keysChecked++;
      if (diffs.length > 0) await this.found(diffs, null);
      return;
    }
    const skeys = cands.map((c) => (c.prefix === null ? tkey : tkey.subarray(c.prefix.length)));
    const present = await Promise.all(
      cands.map(async (c, i) => {
        const sk = skeys[i] as Buffer;
        try {
          const conn = await this.source.connFor(c.sdb, sk);
          return asInt(await conn.call(['EXISTS', sk])) > 0;
        } catch (e) {
          // Undecided (e.g. MOVED mid-resharding): the full comparison below reports it.
          if (e instanceof ReplyError) return false;
          throw e;
        }
      }),
    );
    // On the source: the source pass compared it already.
    if (present.some(Boolean)) return;
    const first = cands[0] as Candidate;
    const ref: KeyRef = { kind: 'pair', sdb: first.sdb, skey: Buffer.from(skeys[0] as Buffer) };
    // Already reported from the source side (it vanished there while still on the target).
    if (this.pending.has(refId(ref))) return;
    const diffs = await this.comparePair(first.sdb, ref.skey);
    if (diffs.length > 0 && this.note(ref, diffs)) this.keysChecked++;
    if (diffs.length > 0) await this.found(diffs, { db: first.sdb, key: ref.skey });
  }

  /** Round 1 differences, to the caller as they are found (onDifference). */
  private async found(diffs: Difference[], source: { db: number; key: Buffer } | null): Promise<void> {
    const cb = this.o.onDifference;
    if (cb) for (const d of diffs) await cb(d, source);
  }

  // -------------------------------------------------------------------------------------------
  // Later rounds

  private async recheckPass(): Promise<void> {
    const pool = new TaskPool(KEY_CONCURRENCY, this.o.signal);
    for (const [id, entry] of [...this.pending]) {
      await pool.submit(async () => {
        const ref = entry.ref;
        const diffs = ref.kind === 'pair' ? await this.comparePair(ref.sdb, ref.skey) : await this.targetOnly(ref.tdb, ref.tkey, ref.why);
        if (diffs.length === 0) this.pending.delete(id);
        else entry.diffs = diffs;
        this.progress();
      });
    }
    await pool.drain();
  }

  // -------------------------------------------------------------------------------------------
  // Comparisons

  /** The source key `skey` of `sdb` against its place on the target. */
  private async comparePair(sdb: number, skey: Buffer): Promise<Difference[]> {
    const place = this.dbs.placement(sdb);
    if (place === null) return [];
    const tkey = place.prefix === null ? skey : Buffer.concat([place.prefix, skey]);
    const [s, t] = await Promise.all([this.source.connFor(sdb, skey), this.target.connFor(place.db, tkey)]);
    const found = await compareKeyPair({ s, sk: skey, t, tk: tkey }, this.ctx);
    if (found.length === 0) return [];
    const renamed = place.prefix !== null || place.db !== sdb ? ` [target db ${place.db} "${printable(tkey)}"]` : '';
    const key = printable(skey);
    return found.map((f) => ({ db: sdb, key, kind: f.kind, detail: f.detail + renamed }));
  }

  /** A target key that no source db can account for: extra while it exists. */
  private async targetOnly(tdb: number, tkey: Buffer, why: string): Promise<Difference[]> {
    const key = printable(tkey);
    try {
      const c = await this.target.connFor(tdb, tkey);
      const type = asText(await c.call(['TYPE', tkey]));
      return type === 'none' ? [] : [{ db: tdb, key, kind: 'extra', detail: `${type} only on target (${why})` }];
    } catch (e) {
      if (e instanceof ReplyError) return [{ db: tdb, key, kind: 'value', detail: `could not compare: ${e.message} (${why})` }];
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Bookkeeping

  /** Records a round-1 difference; false when the key was recorded already. */
  private note(ref: KeyRef, diffs: Difference[]): boolean {
    const id = refId(ref);
    if (this.pending.has(id)) return false;
    if (this.pending.size < RECHECK_LIMIT) {
      this.pending.set(id, { ref, diffs });
      return true;
    }
    this.overflowKeys++;
    for (const d of diffs) {
      this.overflowCounts[d.kind]++;
      if (this.overflowList.length < this.o.maxReported) this.overflowList.push(d);
    }
    return true;
  }

  private setPhase(phase: VerifyPhase): void {
    this.phase = phase;
    this.progress(true);
  }

  private progress(force = false): void {
    const cb = this.o.onProgress;
    if (cb === undefined) return;
    const now = Date.now();
    if (!force && now - this.lastProgress < PROGRESS_INTERVAL_MS) return;
    this.lastProgress = now;
    cb({
      round: this.round,
      rounds: this.o.rounds,
      phase: this.phase,
      keysChecked: this.keysChecked,
      differingKeys: this.pending.size + this.overflowKeys + this.functionDiffs.length,
    });
  }
}
