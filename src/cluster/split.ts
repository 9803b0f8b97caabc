/**
 * How one replicated command (or one MULTI…EXEC) is applied to a Redis Cluster target.
 *
 * A cluster node only runs a command whose keys all hash to one slot it owns. A standalone
 * source emits anything, so each command is planned as one of: route as is (`single`), send to
 * every master (`broadcast`) or any one (`any`), cut into exact per-slot commands (`split`),
 * replay as a short program of target reads and writes (`rewrite`), or refuse (`unsupported`).
 * Reference: redis-replication-rdb.md 1.6 (what the stream holds) and 3.4 (the rewrites).
 *
 * Everything here is exact only because the stream carries *effects*: each command succeeded on
 * the source, so e.g. an MSETNX in the stream set all its keys (MSET per slot is the same), an
 * SMOVE found its member, a RENAME found its source. A rewrite guards those facts on the target
 * (see RewriteStep) and stops, changing nothing more, when the target disagrees.
 *
 * Pure: no I/O, no clock. Slots are computed here with Redis' exact algorithm (see slotOf).
 */
import { keysOf, lowerName, sortStoreIndex, type KeyedSpec } from './command-keys.js';
import { CLOSE, OPEN, SLOT_COUNT, crc16, slotOf, temporaryKeyInSlotOf } from '../common/slots.js';

// ---------------------------------------------------------------------------------------------
// Plans

/**
 * An argument of a rewrite call: literal bytes, or the value an earlier step stored in a
 * register (a bulk reply is used as its bytes, an integer as its decimal text).
 */
export type Operand = Buffer | { register: string };

/**
 * Read a key from the target: `DUMP key` and `PTTL key`, sent back to back on the slot's
 * connection (nothing of the writer can run between them because the plan's slots are fenced).
 * The register then holds `{ payload, pttl }`, or "absent" when DUMP answers nil (or PTTL -2:
 * the key expired in between).
 *
 * `required`: the command succeeded on the source only because this key existed (RENAME's and
 * COPY's source). Absent on the target means the target differs from the source: the plan
 * stops (see RewritePlan), having changed nothing. Not required (a store command's input): an
 * absent key is simply empty, as it was for the source.
 */
export interface DumpStep {
  op: 'dump';
  slot: number;
  key: Buffer;
  into: string;
  required: boolean;
}

/**
 * Write a key from a dump register.
 * - present: `RESTORE key <ttl> <payload> [REPLACE]`. With `ttl: 'keep'` the ttl is the
 *   dumped PTTL, except PTTL -1 (no TTL) → 0 and PTTL 0 (expires within the millisecond) → 1,
 *   since 0 would make it persistent; with 'none' it is 0. The TTL drifts by the time between
 *   PTTL and RESTORE (one round trip), as with any relative TTL.
 * - absent: with `replace`, `DEL key` (the key must end absent, like what was dumped);
 *   without, nothing.
 * Without `replace` an existing key makes RESTORE fail (BUSYKEY): for RENAMENX / COPY that
 * is the case where the original did nothing, and the plan stops there.
 */
export interface RestoreStep {
  op: 'restore';
  slot: number;
  key: Buffer;
  from: string;
  ttl: 'keep' | 'none';
  replace: boolean;
}

/**
 * Send a command to the slot's owner, with register operands substituted.
 * - `into`: store the reply in a register for later steps.
 * - `expect`: a guard on the reply; when it does not hold the plan stops. 'nonNil': a pop
 *   returned an element; 'nonZero': an integer reply other than 0 (SREM removed the member).
 * - `always`: cleanup (deleting temporaries), run even when an earlier step stopped the plan.
 */
export interface CallStep {
  op: 'call';
  slot: number;
  args: Operand[];
  into?: string;
  expect?: 'nonNil' | 'nonZero';
  always?: boolean;
}

/**
 * One instruction of a rewrite. Execution contract for the writer (which routes a slot to its
 * master and can await a reply):
 * 1. Before the first step, every earlier write must be applied (barrier), and until the last
 *    step is answered nothing else may be sent for the plan's `slots`: the steps read the
 *    target and assume nobody else writes those keys meanwhile.
 * 2. Steps run one at a time, in order, each awaited: a step may use an earlier one's register.
 * 3. An error reply, or a guard that does not hold (`required` dump absent, `expect` not met),
 *    stops the plan: later steps are skipped, except those marked `always`. Guards only fail
 *    when the target does not hold what the source held when it ran the command; every guard
 *    comes before the first write of the plan, so a stopped plan has written nothing (beyond
 *    temporaries, which the `always` steps remove) — which is also what the original command
 *    would have done to that target (RENAME: "no such key"; SMOVE, COPY, RENAMENX: 0).
 *    The writer reports the stop like a refused command.
 * 4. Registers are named by the steps that fill them (`into`); names are unique per plan.
 */
export type RewriteStep = DumpStep | RestoreStep | CallStep;

export type Plan =
  /** Every key in one slot: send `args` to its owner (args may differ from the input: RESTORE-ASKING → RESTORE). */
  | { kind: 'single'; slot: number; args: readonly Buffer[] }
  /** Server-wide: send to every master (FLUSHALL, FLUSHDB, FUNCTION LOAD/DELETE/FLUSH/RESTORE, SCRIPT LOAD/FLUSH). */
  | { kind: 'broadcast'; args: readonly Buffer[] }
  /** Key-less and harmless: any one master (PUBLISH, PING, SELECT 0, a script declaring no key). */
  | { kind: 'any'; args: readonly Buffer[] }
  /**
   * Exact per-slot commands (MSET, MSETNX→MSET, MSETEX, DEL, UNLINK, TOUCH, EXISTS, JSON.MSET,
   * TS.MADD), in order of each slot's first key, keys in their original order within a part.
   * Parts touch disjoint keys: they may be applied in any order, or concurrently.
   */
  | { kind: 'split'; parts: { slot: number; args: Buffer[] }[] }
  /** No single-command equivalent: run `steps` (see RewriteStep) with `slots` fenced. */
  | { kind: 'rewrite'; steps: RewriteStep[]; slots: number[] }
  | { kind: 'unsupported'; reason: string };

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const DEL = b('DEL');
const MSET = b('MSET');
const RESTORE = b('RESTORE');

// ---------------------------------------------------------------------------------------------

/** FUNCTION / SCRIPT subcommands that change the script cache: every master needs them. */
const FUNCTION_BROADCAST = new Set(['load', 'delete', 'flush', 'restore']);
const SCRIPT_BROADCAST = new Set(['load', 'flush']);

/** Peers split per slot with the command's own name. */
const SPLIT_BY_KEY = new Set(['del', 'unlink', 'touch', 'exists']);
/** Tuples split per slot: tuple width. */
const SPLIT_TUPLES = new Map<string, number>([
  ['mset', 2],
  ['msetnx', 2],
  ['json.mset', 3],
  ['ts.madd', 3],
]);
const MOVE_LIST = new Set(['lmove', 'blmove', 'rpoplpush', 'brpoplpush']);
/** Commands whose destination is computed from the other keys (temporaries when cross-slot). */
const STORE = new Set([
  'sunionstore',
  'sinterstore',
  'sdiffstore',
  'zunionstore',
  'zinterstore',
  'zdiffstore',
  'zrangestore',
  'bitop',
  'pfmerge',
  'geosearchstore',
  'georadius',
  'georadiusbymember',
  'sort',
  'cms.merge',
  'tdigest.merge',
]);
const SCRIPTS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/**
 * How to apply one replicated command to a cluster. `args[0]` is the name in any case. The
 * caller consumes the stream's framing before: PING/REPLCONF (never forwarded), SELECT (db
 * mapping) and MULTI/EXEC (see planTransaction); those are still answered here for safety.
 */
export function planForCluster(args: readonly Buffer[]): Plan {
  const name = lowerName(args[0]);

  switch (name) {
    case 'flushall':
    case 'flushdb':
      return { kind: 'broadcast', args };
    case 'function':
      return FUNCTION_BROADCAST.has(lowerName(args[1])) ? { kind: 'broadcast', args } : serverSide(name, args);
    case 'script':
      return SCRIPT_BROADCAST.has(lowerName(args[1])) ? { kind: 'broadcast', args } : serverSide(name, args);
    case 'multi':
    case 'exec':
    case 'discard':
      return unsupported(`${name.toUpperCase()} is transaction framing: plan the whole transaction with planTransaction`);
    case 'watch':
    case 'unwatch':
      return unsupported(`${name.toUpperCase()} is never propagated, and on a shared target connection it would make later transactions fail`);
    case 'replconf':
      return unsupported('REPLCONF is replication control between master and replica: it is never forwarded');
    case 'ping':
    case 'echo':
    case 'publish':
      return { kind: 'any', args };
    case 'spublish':
      // A shard channel hashes like a key: the cluster only accepts it on the slot's owner.
      return args.length > 1 ? { kind: 'single', slot: slotOf(args[1]!), args } : { kind: 'any', args };
    case 'select': {
      const db = lowerName(args[1]);
      return db === '0' ? { kind: 'any', args } : unsupported(`SELECT ${db}: a cluster has db 0 only (map source dbs before planning)`);
    }
    case 'swapdb':
      return unsupported('SWAPDB: a cluster has db 0 only');
    case 'move':
      return unsupported('MOVE: a cluster has db 0 only');
    case 'migrate':
      return unsupported('MIGRATE is never propagated (its effect arrives as DEL), and replaying it would move target data away');
    case 'restore-asking':
      // What a source shard's stream shows for a key moved in by MIGRATE (reference 1.6).
      return args.length > 1 ? { kind: 'single', slot: slotOf(args[1]!), args: [RESTORE, ...args.slice(1)] } : { kind: 'any', args };
    default:
      break;
  }

  const spec = keysOf(args);
  if (spec.kind === 'keyless') return { kind: 'any', args };
  const slots = spec.positions.map((i) => slotOf(args[i]!));

  if (name === 'copy') {
    const opts = copyOptions(args);
    if (opts.db) return unsupported('COPY … DB: a cluster has db 0 only');
  }
  if (name === 'sort') {
    const refusal = sortPatternRefusal(args, spec);
    if (refusal !== null) return unsupported(refusal);
  }

  const first = slots[0]!;
  if (slots.every((s) => s === first)) {
    return { kind: 'single', slot: first, args };
  }

  if (SPLIT_BY_KEY.has(name)) return splitByKey(args, spec.positions, slots);
  const width = SPLIT_TUPLES.get(name);
  if (width !== undefined) return splitTuples(name === 'msetnx' ? MSET : args[0]!, args, spec.positions, slots, width);
  if (name === 'msetex') return splitMsetex(args, spec.positions, slots);
  if (name === 'rename' || name === 'renamenx') return moveKey(args, name === 'rename');
  if (name === 'copy') return copyKey(args);
  if (name === 'smove') return moveMember(args);
  if (MOVE_LIST.has(name)) return moveElement(args, name);
  if (STORE.has(name) && spec.destination !== undefined) return storeWithTemporaries(args, spec);
  if (SCRIPTS.has(name)) {
    return unsupported(
      `${name.toUpperCase()} with keys in several slots: a script replicated verbatim (sources up to 6.2) cannot run on a cluster; ` +
        'make the source replicate script effects (lua-replicate-commands yes, always on from 7.0)',
    );
  }
  return unsupported(`${name.toUpperCase()} with keys in several slots has no exact cluster equivalent`);
}

function unsupported(reason: string): Plan {
  return { kind: 'unsupported', reason };
}

/** FUNCTION / SCRIPT subcommands that do not change data: KILL would hit a target's own script. */
function serverSide(name: string, args: readonly Buffer[]): Plan {
  const sub = lowerName(args[1]);
  if (sub === 'kill') return unsupported(`${name.toUpperCase()} KILL is not a data change`);
  return { kind: 'any', args };
}

// ---------------------------------------------------------------------------------------------
// Splits

/** Slots in order of first appearance, each with the argument indexes of its keys (in order). */
function groupBySlot(positions: readonly number[], slots: readonly number[]): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  positions.forEach((p, i) => {
    const s = slots[i]!;
    const g = groups.get(s);
    if (g) g.push(p);
    else groups.set(s, [p]);
  });
  return groups;
}

function splitByKey(args: readonly Buffer[], positions: readonly number[], slots: readonly number[]): Plan {
  const parts = [...groupBySlot(positions, slots)].map(([slot, ps]) => ({
    slot,
    args: [args[0]!, ...ps.map((p) => args[p]!)],
  }));
  return { kind: 'split', parts };
}

/** `name k v …` per slot: each tuple starts at a key position. */
function splitTuples(name: Buffer, args: readonly Buffer[], positions: readonly number[], slots: readonly number[], width: number): Plan {
  const parts = [...groupBySlot(positions, slots)].map(([slot, ps]) => ({
    slot,
    args: [name, ...ps.flatMap((p) => args.slice(p, p + width))],
  }));
  return { kind: 'split', parts };
}

/**
 * MSETEX numkeys k v … [NX|XX] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL] per slot, with the same
 * expiration options. NX/XX are dropped, as MSETNX becomes MSET: the command is propagated only
 * when the condition held for every key, so on a consistent target it holds per part too, and
 * a part must not be refused because another part's keys already changed.
 */
function splitMsetex(args: readonly Buffer[], positions: readonly number[], slots: readonly number[]): Plan {
  const last = positions[positions.length - 1]!;
  const options: Buffer[] = [];
  for (let i = last + 2; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'nx' || word === 'xx') continue;
    options.push(args[i]!);
    if (word === 'ex' || word === 'px' || word === 'exat' || word === 'pxat') {
      const v = args[++i];
      if (v !== undefined) options.push(v);
    }
  }
  const parts = [...groupBySlot(positions, slots)].map(([slot, ps]) => ({
    slot,
    args: [args[0]!, b(String(ps.length)), ...ps.flatMap((p) => args.slice(p, p + 2)), ...options],
  }));
  return { kind: 'split', parts };
}

// ---------------------------------------------------------------------------------------------
// Rewrites

function copyOptions(args: readonly Buffer[]): { db: boolean; replace: boolean } {
  let db = false;
  let replace = false;
  for (let i = 3; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'db') {
      db = true;
      i++;
    } else if (word === 'replace') replace = true;
  }
  return { db, replace };
}

function distinct(slots: readonly number[]): number[] {
  return [...new Set(slots)];
}

/**
 * RENAME / RENAMENX across slots: DUMP src → RESTORE dst with src's TTL (REPLACE for RENAME:
 * it overwrites; none for RENAMENX: it was propagated because dst did not exist) → DEL src.
 */
function moveKey(args: readonly Buffer[], replace: boolean): Plan {
  const src = args[1]!;
  const dst = args[2]!;
  const s = slotOf(src);
  const d = slotOf(dst);
  return {
    kind: 'rewrite',
    slots: distinct([s, d]),
    steps: [
      { op: 'dump', slot: s, key: src, into: 'src', required: true },
      { op: 'restore', slot: d, key: dst, from: 'src', ttl: 'keep', replace },
      { op: 'call', slot: s, args: [DEL, src] },
    ],
  };
}

/** COPY src dst [REPLACE] across slots: DUMP src → RESTORE dst with src's TTL (COPY keeps it). */
function copyKey(args: readonly Buffer[]): Plan {
  const src = args[1]!;
  const dst = args[2]!;
  const s = slotOf(src);
  const d = slotOf(dst);
  return {
    kind: 'rewrite',
    slots: distinct([s, d]),
    steps: [
      { op: 'dump', slot: s, key: src, into: 'src', required: true },
      { op: 'restore', slot: d, key: dst, from: 'src', ttl: 'keep', replace: copyOptions(args).replace },
    ],
  };
}

/**
 * SMOVE src dst member across slots: SREM src member (guard: it was there, as on the source)
 * then SADD dst member. SMOVE also refuses a dst of another type before removing anything; on
 * a target consistent with the source that cannot happen (the source's SMOVE succeeded).
 */
function moveMember(args: readonly Buffer[]): Plan {
  const src = args[1]!;
  const dst = args[2]!;
  const member = args[3] ?? Buffer.alloc(0);
  const s = slotOf(src);
  const d = slotOf(dst);
  return {
    kind: 'rewrite',
    slots: distinct([s, d]),
    steps: [
      { op: 'call', slot: s, args: [b('SREM'), src, member], expect: 'nonZero' },
      { op: 'call', slot: d, args: [b('SADD'), dst, member] },
    ],
  };
}

/**
 * LMOVE src dst from to / RPOPLPUSH src dst (and their blocking forms) across slots: pop the
 * element from src on the target (LPOP for LEFT, RPOP for RIGHT; RPOPLPUSH = RIGHT LEFT),
 * guard that there was one, push it to dst (LPUSH for LEFT, RPUSH for RIGHT). The element is
 * read from the target, not taken from the source: it is what the target's list holds at that
 * end, which is what the source popped when both agree.
 */
function moveElement(args: readonly Buffer[], name: string): Plan {
  const src = args[1]!;
  const dst = args[2]!;
  const pair = name === 'rpoplpush' || name === 'brpoplpush';
  const from = pair ? 'right' : lowerName(args[3]);
  const to = pair ? 'left' : lowerName(args[4]);
  if ((from !== 'left' && from !== 'right') || (to !== 'left' && to !== 'right')) {
    return unsupported(`${name.toUpperCase()} with directions '${from}' '${to}'`);
  }
  const s = slotOf(src);
  const d = slotOf(dst);
  return {
    kind: 'rewrite',
    slots: distinct([s, d]),
    steps: [
      { op: 'call', slot: s, args: [b(from === 'left' ? 'LPOP' : 'RPOP'), src], into: 'element', expect: 'nonNil' },
      { op: 'call', slot: d, args: [b(to === 'left' ? 'LPUSH' : 'RPUSH'), dst, { register: 'element' }] },
    ],
  };
}

/**
 * A store command across slots: every input key outside dst's slot is copied (DUMP, RESTORE
 * REPLACE, no TTL) to a temporary key in dst's slot, the command runs on dst's node with those
 * inputs renamed (options, weights and the order of keys untouched), then the temporaries are
 * deleted (`always`, so an error does not leave them behind). Inputs already in dst's slot,
 * dst itself included (PFMERGE, TDIGEST.MERGE read it), stay as they are. A key named several
 * times gets one temporary.
 */
function storeWithTemporaries(args: readonly Buffer[], spec: KeyedSpec): Plan {
  const dstIndex = spec.destination!;
  const dst = args[dstIndex]!;
  const d = slotOf(dst);
  const rewritten: Buffer[] = [...args];
  const temporaries = new Map<string, Buffer>(); // input key (latin1) → temporary
  const steps: RewriteStep[] = [];
  const slots = [d];
  for (const p of spec.positions) {
    if (p === dstIndex) continue;
    const key = args[p]!;
    const s = slotOf(key);
    if (s === d) continue;
    const id = key.toString('latin1');
    let tmp = temporaries.get(id);
    if (tmp === undefined) {
      tmp = temporaryKeyInSlotOf(dst, temporaries.size);
      const register = `input${temporaries.size}`;
      temporaries.set(id, tmp);
      slots.push(s);
      steps.push(
        { op: 'dump', slot: s, key, into: register, required: false },
        { op: 'restore', slot: d, key: tmp, from: register, ttl: 'none', replace: true },
      );
    }
    rewritten[p] = tmp;
  }
  steps.push({ op: 'call', slot: d, args: rewritten });
  steps.push({ op: 'call', slot: d, args: [DEL, ...temporaries.values()], always: true });
  return { kind: 'rewrite', steps, slots: distinct(slots) };
}

// ---------------------------------------------------------------------------------------------
// SORT patterns

/**
 * The slot of the keys a SORT BY/GET pattern forms, as `patternHashSlot` computes it: only a
 * non-empty tag that closes before any wildcard pins them; -1 otherwise (any slot).
 */
function patternSlot(pattern: Buffer): number {
  let s = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c) return -1; // * ? [ \
    if (s === -1 && c === OPEN) s = i;
    else if (s >= 0 && c === CLOSE) return i === s + 1 ? -1 : crc16(pattern, s + 1, i) & (SLOT_COUNT - 1);
  }
  return -1;
}

/**
 * SORT … STORE whose BY or GET patterns read other keys (a pattern with `*`; `GET #` and a
 * BY without `*` read nothing). Those keys can be anywhere unless the pattern's tag pins them
 * to dst's slot, where the command will run; otherwise the command cannot be replayed.
 * A SORT without STORE writes nothing and needs no check.
 */
function sortPatternRefusal(args: readonly Buffer[], spec: KeyedSpec): string | null {
  const store = sortStoreIndex(args);
  if (store === undefined || spec.destination === undefined) return null;
  const d = slotOf(args[store]!);
  for (let i = 2; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'limit') i += 2;
    else if (word === 'store') i += 1;
    else if (word === 'by' || word === 'get') {
      const pattern = args[++i];
      // No '*': BY means "do not sort" and GET returns nothing (or the element, for '#').
      if (pattern === undefined || !pattern.includes(0x2a)) continue;
      if (patternSlot(pattern) !== d) {
        return `SORT … STORE with ${word.toUpperCase()} pattern reading keys outside the destination's slot`;
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Transactions

export type TxPlan =
  /** Every keyed command in one slot: MULTI … EXEC on its owner, as on the source. */
  | { kind: 'atomic'; slot: number; commands: (readonly Buffer[])[] }
  /**
   * Keys in several slots. A cluster runs a transaction only when all its keys share one slot,
   * so each slot gets its own MULTI … EXEC with its commands in their original order (split
   * commands contribute a part to each slot they touch). Atomicity across slots is lost: a
   * reader of the target can see one group applied and not another, and if one group fails the
   * others still apply. Groups touch disjoint keys, so their relative order does not matter.
   * Key-less commands (PUBLISH) go with the group of the keyed command before them.
   */
  | { kind: 'split'; groups: { slot: number; commands: (readonly Buffer[])[] }[] }
  /**
   * The transaction holds a command that cannot be queued in a MULTI on a cluster (a rewrite
   * reads from the target; a broadcast goes to every master): apply the plans one after the
   * other in the original order, each as if it came alone. No atomicity at all.
   */
  | { kind: 'sequence'; plans: Plan[] }
  /** No command names a key (a script that only published): any one master, as one MULTI … EXEC. */
  | { kind: 'any'; commands: (readonly Buffer[])[] }
  /** `index`: the command (in `commands`) that cannot be applied. */
  | { kind: 'unsupported'; reason: string; index: number };

/**
 * Plans the commands between MULTI and EXEC (both excluded; the caller drops SELECT, which
 * the db mapping handles, before calling).
 */
export function planTransaction(commands: readonly (readonly Buffer[])[]): TxPlan {
  const plans = commands.map((c) => planForCluster(c));
  for (const [index, plan] of plans.entries()) {
    if (plan.kind === 'unsupported') {
      return { kind: 'unsupported', index, reason: `${lowerName(commands[index]![0]).toUpperCase()} in a transaction: ${plan.reason}` };
    }
  }
  if (plans.some((p) => p.kind === 'rewrite' || p.kind === 'broadcast')) return { kind: 'sequence', plans };

  const groups = new Map<number, (readonly Buffer[])[]>();
  // Key-less commands join the group of the keyed command before them; those before the first
  // keyed command join the first group.
  const leading: (readonly Buffer[])[] = [];
  let current: (readonly Buffer[])[] = leading;
  const add = (slot: number, args: readonly Buffer[]): void => {
    let g = groups.get(slot);
    if (g === undefined) {
      g = groups.size === 0 ? leading : [];
      groups.set(slot, g);
    }
    g.push(args);
    current = g;
  };
  for (const plan of plans) {
    if (plan.kind === 'single') add(plan.slot, plan.args);
    else if (plan.kind === 'split') for (const part of plan.parts) add(part.slot, part.args);
    else if (plan.kind === 'any') current.push(plan.args);
  }
  if (groups.size === 0) return { kind: 'any', commands: leading };
  if (groups.size === 1) {
    const [slot, cmds] = groups.entries().next().value as [number, (readonly Buffer[])[]];
    return { kind: 'atomic', slot, commands: cmds };
  }
  return { kind: 'split', groups: [...groups].map(([slot, cmds]) => ({ slot, commands: cmds })) };
}
