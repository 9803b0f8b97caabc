/**
 * Which arguments of a replicated command are keys.
 *
 * The replication stream carries the effects of successful commands (reference 1.6), so the
 * table covers every command a Redis (up to 7.4 / 8.x) or Valkey master can propagate, plus the
 * read-only and blocking forms that a source normally rewrites before propagating (they are
 * cheap to know, and knowing them keeps them out of the `guessed` path). The positions follow
 * the servers' own key extraction (`getKeysFromCommand`: key specs, `sortGetKeys`,
 * `georadiusGetKeys`, `xreadGetKeys`, `migrateGetKeys`), so a command routed with them lands
 * where a cluster node expects it.
 *
 * Commands arrive as `args: Buffer[]`, `args[0]` being the command name in any case. Nothing
 * here allocates per key beyond the positions array: the writer calls this for every command.
 */

/** A command that names no key: route by its kind, not by a slot. */
export interface KeylessSpec {
  kind: 'keyless';
  /** Unknown command with no argument: assumed key-less (see `guessed` on KeyedSpec). */
  guessed?: true;
}

/** A command that names one or more keys. */
export interface KeyedSpec {
  kind: 'keys';
  /**
   * Indexes into `args` of every key, in argument order; never empty. A single-key command has
   * exactly one, so the writer routes it with `slotOf(args[positions[0]])` and nothing else.
   * A key named twice (`SUNIONSTORE d x x`) appears twice.
   */
  positions: number[];
  /**
   * Index into `args` of the key this command writes from the others: the destination of a
   * store command (`SUNIONSTORE`, `BITOP`, `SORT … STORE`, `GEORADIUS … STORE`), of a move
   * (`LMOVE`, `SMOVE`, `RENAME`) or of `COPY`. It is also listed in `positions`. Absent for
   * commands whose keys are peers (`MSET`, `DEL`) or that write one key.
   */
  destination?: number;
  /**
   * The command is not in the table: `args[1]` was taken as its key. Module commands (JSON.*,
   * TS.*, BF.*, vector sets, third-party modules replicating with RM_Replicate) take their key
   * first by overwhelming convention, and routing by a wrong guess is caught by the cluster
   * (MOVED or CROSSSLOT), so this beats refusing every unknown command. Callers should log it.
   */
  guessed?: true;
}

export type KeySpec = KeylessSpec | KeyedSpec;

// ---------------------------------------------------------------------------------------------
// Rules

/** How to find the keys of one command; `args` is the whole command (name included). */
type Rule =
  | { r: 'keyless' }
  /** Keys at fixed indexes (those beyond the arguments are ignored). */
  | { r: 'fixed'; at: readonly number[]; destination?: number }
  /** Keys from `first` to `last` (negative: from the end, -1 = last argument) every `step`. */
  | { r: 'range'; first: number; last: number; step: number; destination?: number }
  /** `numkeys` at `countAt`, then that many keys, optionally after a fixed destination. */
  | { r: 'numkeys'; countAt: number; step: number; destination?: number }
  /** The key is at index 2, after a subcommand, for the listed subcommands only. */
  | { r: 'subcommand'; keyed: ReadonlySet<string> }
  | { r: 'custom'; keys: (args: readonly Buffer[]) => KeySpec };

const RULES = new Map<string, Rule>();

function define(names: string, rule: Rule): void {
  for (const name of names.split(/\s+/)) if (name !== '') RULES.set(name, rule);
}

// Writes with one key, first argument. Each line is a data type; the comment says why a
// command that a source rewrites is still listed.
define(
  `set setnx setex psetex getset getdel getex append setrange incr decr incrby decrby incrbyfloat
   setbit bitfield delex delifeq
   expire pexpire expireat pexpireat persist restore restore-asking
   lpush rpush lpushx rpushx linsert lset lrem ltrim lpop rpop
   sadd srem spop
   zadd zincrby zrem zremrangebyscore zremrangebyrank zremrangebylex zpopmin zpopmax
   hset hsetnx hmset hdel hincrby hincrbyfloat hexpire hpexpire hexpireat hpexpireat hpersist
   hgetdel hgetex hsetex
   xadd xtrim xdel xack xclaim xautoclaim xsetid xdelex xackdel
   pfadd pfdebug geoadd
   vadd vrem vsetattr`,
  { r: 'fixed', at: [1] },
);
// Reads with one key, first argument. PFCOUNT of one key is propagated (it caches the
// cardinality in the value); the others only appear from unusual sources but cost nothing.
define(
  `get strlen getrange substr getbit bitcount bitpos bitfield_ro digest
   type ttl pttl expiretime pexpiretime dump
   hget hmget hgetall hkeys hvals hlen hexists hstrlen hrandfield hscan httl hpttl hexpiretime hpexpiretime
   lindex llen lrange lpos
   scard sismember smismember smembers srandmember sscan
   zcard zcount zlexcount zrange zrangebyscore zrangebylex zrevrange zrevrangebyscore zrevrangebylex
   zrank zrevrank zscore zmscore zrandmember zscan
   xlen xrange xrevrange xpending
   geodist geohash geopos geosearch georadius_ro georadiusbymember_ro sort_ro
   vcard vdim vemb vgetattr vinfo vlinks vrandmember vsim`,
  { r: 'fixed', at: [1] },
);
// Two keys, source then destination. MOVE's second argument is a db, not a key.
define('rename renamenx smove lmove blmove rpoplpush brpoplpush', { r: 'fixed', at: [1, 2], destination: 2 });
define('move', { r: 'fixed', at: [1] });
// COPY source destination [DB n] [REPLACE]: the DB option names a database, not a key.
define('copy', { r: 'fixed', at: [1, 2], destination: 2 });
// destination first, then its source.
define('zrangestore geosearchstore', { r: 'fixed', at: [1, 2], destination: 1 });
define('lcs', { r: 'fixed', at: [1, 2] });
// RedisTimeSeries (bundled since 8.0): a rule between two series.
define('ts.createrule ts.deleterule', { r: 'fixed', at: [1, 2] });

// Every argument is a key.
define('del unlink touch exists mget watch sinter sunion sdiff pfcount', { r: 'range', first: 1, last: -1, step: 1 });
// destination then sources. PFMERGE also reads its destination (it merges into it).
define('sunionstore sinterstore sdiffstore pfmerge', { r: 'range', first: 1, last: -1, step: 1, destination: 1 });
// BITOP op destination source...
define('bitop', { r: 'range', first: 2, last: -1, step: 1, destination: 2 });
// key value pairs.
define('mset msetnx', { r: 'range', first: 1, last: -1, step: 2 });
// key path value (RedisJSON) and key timestamp value (RedisTimeSeries) triples.
define('json.mset ts.madd', { r: 'range', first: 1, last: -1, step: 3 });
// Keys then a trailing timeout (blocking pops, never propagated as such) or a trailing path.
define('blpop brpop bzpopmin bzpopmax json.mget', { r: 'range', first: 1, last: -2, step: 1 });

// numkeys forms.
define('sintercard zintercard zunion zinter zdiff lmpop zmpop', { r: 'numkeys', countAt: 1, step: 1 });
define('eval evalsha eval_ro evalsha_ro fcall fcall_ro blmpop bzmpop', { r: 'numkeys', countAt: 2, step: 1 });
// destination numkeys source... (CMS.MERGE / TDIGEST.MERGE: bundled modules, same shape).
define('zunionstore zinterstore zdiffstore cms.merge tdigest.merge', {
  r: 'numkeys',
  countAt: 2,
  step: 1,
  destination: 1,
});
// MSETEX numkeys key value [key value ...] [options] (Redis 8.4, Valkey 9.1): numkeys pairs.
define('msetex', { r: 'numkeys', countAt: 1, step: 2 });

// Subcommand containers whose key follows the subcommand.
define('xgroup', { r: 'subcommand', keyed: new Set(['create', 'setid', 'destroy', 'createconsumer', 'delconsumer']) });
define('xinfo', { r: 'subcommand', keyed: new Set(['stream', 'groups', 'consumers']) });
define('object', { r: 'subcommand', keyed: new Set(['encoding', 'freq', 'idletime', 'refcount']) });
define('memory', { r: 'subcommand', keyed: new Set(['usage']) });

define('sort', { r: 'custom', keys: sortKeys });
define('georadius', { r: 'custom', keys: (args) => georadiusKeys(args, 6) });
define('georadiusbymember', { r: 'custom', keys: (args) => georadiusKeys(args, 5) });
define('xread xreadgroup', { r: 'custom', keys: xreadKeys });
define('migrate', { r: 'custom', keys: migrateKeys });

// Key-less. PUBLISH/SPUBLISH name a channel, not a key (SPUBLISH's channel still hashes to a
// slot on a cluster: the planner routes it, see split.ts). FUNCTION and SCRIPT work on the
// server's script cache. SWAPDB and SELECT name databases.
define(
  `flushall flushdb swapdb pfselftest select multi exec discard unwatch ping echo replconf publish spublish
   function script wait waitaof asking readonly readwrite reset quit auth hello client config info
   dbsize randomkey keys scan time lastsave save bgsave bgrewriteaof debug cluster command acl module
   latency slowlog monitor sync psync shutdown replicaof slaveof role failover lolwut
   subscribe unsubscribe psubscribe punsubscribe ssubscribe sunsubscribe pubsub`,
  { r: 'keyless' },
);

// ---------------------------------------------------------------------------------------------
// Custom extractors (mirroring the servers' own parsers)

/** Lower-case ASCII name of an argument, for keyword comparison. */
export function lowerName(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toLowerCase();
}

function keyed(positions: number[], destination?: number): KeySpec {
  if (positions.length === 0) return { kind: 'keyless' };
  return destination === undefined ? { kind: 'keys', positions } : { kind: 'keys', positions, destination };
}

/**
 * Where SORT's STORE destination is, parsed like `sortCommandGeneric` does: LIMIT takes two
 * values, BY/GET/STORE one each, so a pattern or a store key spelled "store" is not mistaken
 * for the option. The last STORE wins, as in the server.
 */
export function sortStoreIndex(args: readonly Buffer[]): number | undefined {
  let store: number | undefined;
  for (let i = 2; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'limit') i += 2;
    else if (word === 'by' || word === 'get') i += 1;
    else if (word === 'store' && i + 1 < args.length) store = ++i;
  }
  return store;
}

function sortKeys(args: readonly Buffer[]): KeySpec {
  if (args.length < 2) return { kind: 'keyless' };
  const store = sortStoreIndex(args);
  return store === undefined ? keyed([1]) : keyed([1, store], store);
}

/**
 * GEORADIUS key lon lat radius unit [options] / GEORADIUSBYMEMBER key member radius unit
 * [options]: STORE or STOREDIST key. The last one given is where the result goes
 * (`georadiusGeneric`), so it is the destination; an earlier one is still a key for the
 * cluster (the key specs list every STORE and STOREDIST argument, and all must share a slot).
 */
function georadiusKeys(args: readonly Buffer[], optionsFrom: number): KeySpec {
  if (args.length < 2) return { kind: 'keyless' };
  const positions = [1];
  for (let i = optionsFrom; i < args.length; i++) {
    const word = lowerName(args[i]);
    if ((word === 'store' || word === 'storedist') && i + 1 < args.length) positions.push(++i);
    else if (word === 'count') i += 1; // the count itself; ANY, if present, is a plain flag
  }
  return positions.length === 1 ? keyed(positions) : keyed(positions, positions[positions.length - 1]);
}

/**
 * XREAD [COUNT n] [BLOCK ms] STREAMS key... id... and XREADGROUP GROUP g c [...] STREAMS ...:
 * the keys are the first half of what follows STREAMS (`xreadGetKeys`). Options that take
 * values are skipped so that a group or consumer named "streams" is not taken for the keyword.
 */
function xreadKeys(args: readonly Buffer[]): KeySpec {
  for (let i = 1; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'count' || word === 'block' || word === 'claim') i += 1;
    else if (word === 'group') i += 2;
    else if (word === 'streams') {
      const rest = args.length - i - 1;
      if (rest <= 0 || rest % 2 !== 0) return { kind: 'keyless' };
      const positions: number[] = [];
      for (let k = i + 1; k <= i + rest / 2; k++) positions.push(k);
      return keyed(positions);
    }
  }
  return { kind: 'keyless' };
}

/** MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw] [KEYS key...]. */
function migrateKeys(args: readonly Buffer[]): KeySpec {
  const single = args[3];
  if (single === undefined) return { kind: 'keyless' };
  if (single.length > 0) return keyed([3]);
  for (let i = 6; i < args.length; i++) {
    const word = lowerName(args[i]);
    if (word === 'auth') i += 1;
    else if (word === 'auth2') i += 2;
    else if (word === 'keys') {
      const positions: number[] = [];
      for (let k = i + 1; k < args.length; k++) positions.push(k);
      return keyed(positions);
    }
  }
  return { kind: 'keyless' };
}

/** A non-negative decimal integer argument, or -1. */
function count(arg: Buffer | undefined): number {
  if (arg === undefined || arg.length === 0 || arg.length > 15) return -1;
  let n = 0;
  for (const c of arg) {
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------

/**
 * Which arguments of `args` are keys. Never throws: a malformed command (too few arguments,
 * a numkeys that is not a number) yields the keys that are actually present, possibly none
 * (`keyless`), and the target will refuse it just as the source would have.
 */
export function keysOf(args: readonly Buffer[]): KeySpec {
  const name = lowerName(args[0]);
  const rule = RULES.get(name);
  if (rule === undefined) {
    return args.length > 1 ? { kind: 'keys', positions: [1], guessed: true } : { kind: 'keyless', guessed: true };
  }
  switch (rule.r) {
    case 'keyless':
      return { kind: 'keyless' };
    case 'fixed': {
      const positions = rule.at.filter((i) => i < args.length);
      const dst = rule.destination !== undefined && rule.destination < args.length ? rule.destination : undefined;
      return keyed(positions, dst);
    }
    case 'range': {
      const last = rule.last < 0 ? args.length + rule.last : rule.last;
      const positions: number[] = [];
      for (let i = rule.first; i <= last; i += rule.step) positions.push(i);
      const dst = rule.destination !== undefined && rule.destination <= last ? rule.destination : undefined;
      return keyed(positions, dst);
    }
    case 'numkeys': {
      const positions: number[] = [];
      if (rule.destination !== undefined && rule.destination < args.length) positions.push(rule.destination);
      const n = count(args[rule.countAt]);
      const first = rule.countAt + 1;
      for (let k = 0, i = first; k < n && i < args.length; k++, i += rule.step) positions.push(i);
      const dst = rule.destination !== undefined && rule.destination < args.length ? rule.destination : undefined;
      return keyed(positions, dst);
    }
    case 'subcommand':
      return rule.keyed.has(lowerName(args[1])) && args.length > 2 ? keyed([2]) : { kind: 'keyless' };
    case 'custom':
      return rule.keys(args);
  }
}

/** Whether `name` (lower case) is in the table, i.e. its keys are known rather than guessed. */
export function isKnownCommand(name: string): boolean {
  return RULES.has(name.toLowerCase());
}
