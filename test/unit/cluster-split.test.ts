/**
 * Key extraction and cluster planning (src/cluster/command-keys.ts, src/cluster/split.ts).
 *
 * Three kinds of evidence:
 * - structure: the plans and key positions the modules return, command family by family;
 * - oracles: a real redis-server's COMMAND GETKEYS for key positions, its COMMAND list for
 *   coverage, and a cluster-enabled server's CLUSTER KEYSLOT for the slot function;
 * - execution: every rewrite / split / transaction plan is run by a tiny RewriteStep executor
 *   against one standalone server and the original command against another, from the same
 *   initial state, and the two keyspaces must be equal. That is what "exact" means.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import type { Redis } from 'ioredis';
import { isKnownCommand, keysOf, type KeySpec } from '../../src/cluster/command-keys.js';
import { hashTagOf, slotOf, slotTag, temporaryKeyInSlotOf } from '../../src/common/slots.js';
import {
  planForCluster,
  planTransaction,
  type Operand,
  type Plan,
  type RewriteStep,
  type TxPlan,
} from '../../src/cluster/split.js';
import { compareServers, formatDifferences, scanKeys } from '../helpers/compare.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const cmd = (...words: string[]): Buffer[] => words.map(B);
const str = (args: readonly Buffer[]): string[] => args.map((a) => a.toString('latin1'));

/** The key names keysOf finds, for readable assertions. */
function keyNames(words: string[]): string[] {
  const spec = keysOf(cmd(...words));
  return spec.kind === 'keys' ? spec.positions.map((p) => words[p]!) : [];
}

function positions(...words: string[]): KeySpec {
  return keysOf(cmd(...words));
}

function expectKind<K extends Plan['kind']>(plan: Plan, kind: K): Extract<Plan, { kind: K }> {
  assert.equal(plan.kind, kind, `expected ${kind}, got ${JSON.stringify(plan, (_k, v: unknown) => (isBufferJson(v) ? Buffer.from(v.data).toString('latin1') : v))}`);
  return plan as Extract<Plan, { kind: K }>;
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'Buffer';
}

/** Steps rendered as strings, so that a whole plan reads as one assertion. */
function render(steps: readonly RewriteStep[]): string[] {
  const op = (o: Operand): string => (Buffer.isBuffer(o) ? o.toString('latin1') : `$${o.register}`);
  return steps.map((s) => {
    switch (s.op) {
      case 'dump':
        return `dump@${s.slot} ${s.key.toString('latin1')} -> $${s.into}${s.required ? ' required' : ''}`;
      case 'restore':
        return `restore@${s.slot} ${s.key.toString('latin1')} <- $${s.from} ttl=${s.ttl}${s.replace ? ' replace' : ''}`;
      case 'call':
        return `call@${s.slot} ${s.args.map(op).join(' ')}${s.into ? ` -> $${s.into}` : ''}${s.expect ? ` expect=${s.expect}` : ''}${s.always ? ' always' : ''}`;
    }
  });
}

const slot = (k: string): number => slotOf(B(k));

// Keys in distinct slots (checked below), and tagged keys sharing one.
const [A, Bk, C, D, E] = ['a', 'b', 'c', 'd', 'e'];

describe('slots and hash tags', () => {
  it('matches the reference test vectors', () => {
    assert.equal(slot('123456789'), 0x31c3);
    assert.equal(slot('foo'), 12182);
    assert.equal(slot('bar'), 5061);
    assert.equal(slot('{user1000}.following'), slot('user1000'));
    assert.equal(slot('{user1000}.followers'), slot('{user1000}.following'));
    assert.equal(new Set([A, Bk, C, D, E].map(slot)).size, 5, 'the test keys are in 5 distinct slots');
  });

  it('hashes the whole key for {} and a { without }', () => {
    assert.equal(slot('foo{}{bar}'), slotOf(B('foo{}{bar}')));
    assert.notEqual(slot('{}{bar}'), slot('bar'), 'an empty first tag means the whole key');
    assert.equal(slot('foo{bar'), calculateSlot(B('foo{bar')));
    assert.equal(hashTagOf(B('{}{bar}')), null);
    assert.equal(hashTagOf(B('foo{bar')), null);
    assert.equal(hashTagOf(B('x{{a}b}'))?.toString('latin1'), '{a');
    assert.equal(hashTagOf(B('{a}{b}'))?.toString('latin1'), 'a');
  });

  it('documents why cluster-key-slot is not used: it differs on keys like "{}{a}"', () => {
    // Redis: first '{' at 0, first '}' at 1 → no tag → whole key. cluster-key-slot hashes "{a".
    assert.notEqual(calculateSlot(B('{}{a}')), slot('{}{a}'));
    assert.equal(calculateSlot(B('{}{a}')), slot('{a'));
  });
});

describe('keysOf', () => {
  it('fixed positions', () => {
    assert.deepEqual(positions('SET', 'k', 'v', 'PXAT', '1'), { kind: 'keys', positions: [1] });
    for (const c of [
      ['incr', 'k'],
      ['HSET', 'k', 'f', 'v'],
      ['LPUSH', 'k', 'a', 'b'],
      ['EXPIRE', 'k', '10'],
      ['PEXPIREAT', 'k', '1700000000000'],
      ['XADD', 'k', '1-1', 'f', 'v'],
      ['XCLAIM', 'k', 'g', 'c', '0', '1-1', 'TIME', '1'],
      ['XSETID', 'k', '5-0'],
      ['RESTORE', 'k', '0', 'payload', 'ABSTTL'],
      ['RESTORE-ASKING', 'k', '0', 'payload'],
      ['SETRANGE', 'k', '0', 'v'],
      ['APPEND', 'k', 'v'],
      ['GETDEL', 'k'],
      ['GETEX', 'k', 'PERSIST'],
      ['BITFIELD', 'k', 'SET', 'u8', '0', '1'],
      ['HPEXPIREAT', 'k', '1700000000000', 'FIELDS', '1', 'f'],
      ['HEXPIRE', 'k', '10', 'FIELDS', '1', 'f'],
      ['HPERSIST', 'k', 'FIELDS', '1', 'f'],
      ['PFADD', 'k', 'a'],
      ['GEOADD', 'k', '0', '0', 'm'],
      ['SPOP', 'k'],
      ['SREM', 'k', 'm'],
      ['ZADD', 'k', '1', 'm'],
      ['XDELEX', 'k', 'IDS', '1', '1-1'],
      ['XACKDEL', 'k', 'g', 'IDS', '1', '1-1'],
      ['HSETEX', 'k', 'FIELDS', '1', 'f', 'v'],
      ['DELEX', 'k', 'IFEQ', 'v'],
      ['MOVE', 'k', '3'],
    ]) {
      assert.deepEqual(keysOf(cmd(...c)), { kind: 'keys', positions: [1] }, c.join(' '));
    }
  });

  it('XGROUP / XINFO / OBJECT subcommands: key at index 2', () => {
    for (const sub of ['CREATE', 'SETID', 'DESTROY', 'CREATECONSUMER', 'DELCONSUMER', 'create']) {
      assert.deepEqual(positions('XGROUP', sub, 'k', 'g', '$'), { kind: 'keys', positions: [2] }, sub);
    }
    assert.deepEqual(positions('XGROUP', 'HELP'), { kind: 'keyless' });
    assert.deepEqual(positions('XINFO', 'STREAM', 'k'), { kind: 'keys', positions: [2] });
    assert.deepEqual(positions('OBJECT', 'ENCODING', 'k'), { kind: 'keys', positions: [2] });
  });

  it('two-key moves and copies name their destination', () => {
    for (const name of ['RENAME', 'RENAMENX', 'SMOVE', 'LMOVE', 'RPOPLPUSH', 'BLMOVE', 'BRPOPLPUSH']) {
      assert.deepEqual(positions(name, 's', 'd', 'LEFT', 'RIGHT'), { kind: 'keys', positions: [1, 2], destination: 2 }, name);
    }
    assert.deepEqual(positions('COPY', 's', 'd', 'DB', '3', 'REPLACE'), { kind: 'keys', positions: [1, 2], destination: 2 });
    assert.deepEqual(positions('ZRANGESTORE', 'd', 's', '0', '-1'), { kind: 'keys', positions: [1, 2], destination: 1 });
    assert.deepEqual(positions('GEOSEARCHSTORE', 'd', 's', 'FROMMEMBER', 'm', 'BYRADIUS', '1', 'km'), {
      kind: 'keys',
      positions: [1, 2],
      destination: 1,
    });
  });

  it('all-keys and pairs', () => {
    for (const name of ['DEL', 'UNLINK', 'TOUCH', 'EXISTS', 'WATCH', 'MGET']) {
      assert.deepEqual(keyNames([name, 'k1', 'k2', 'k3']), ['k1', 'k2', 'k3'], name);
    }
    assert.deepEqual(keyNames(['MSET', 'k1', 'v1', 'k2', 'v2']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['MSETNX', 'k1', 'v1', 'k2', 'v2']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['JSON.MSET', 'k1', '$', '1', 'k2', '$', '2']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['TS.MADD', 'k1', '1', '1', 'k2', '1', '2']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['BLPOP', 'k1', 'k2', '0']), ['k1', 'k2']);
  });

  it('numkeys forms', () => {
    for (const name of ['EVAL', 'EVALSHA', 'EVAL_RO', 'EVALSHA_RO', 'FCALL', 'FCALL_RO']) {
      assert.deepEqual(keyNames([name, 'body', '2', 'k1', 'k2', 'arg']), ['k1', 'k2'], name);
      assert.deepEqual(positions(name, 'body', '0', 'arg'), { kind: 'keyless' }, name);
    }
    for (const name of ['ZUNIONSTORE', 'ZINTERSTORE', 'ZDIFFSTORE']) {
      assert.deepEqual(positions(name, 'd', '2', 'k1', 'k2', 'WEIGHTS', '1', '2'), { kind: 'keys', positions: [1, 3, 4], destination: 1 }, name);
    }
    for (const name of ['SINTERCARD', 'ZINTERCARD', 'LMPOP', 'ZMPOP', 'ZUNION', 'ZINTER', 'ZDIFF']) {
      assert.deepEqual(keyNames([name, '2', 'k1', 'k2', 'LEFT']), ['k1', 'k2'], name);
    }
    for (const name of ['BLMPOP', 'BZMPOP']) assert.deepEqual(keyNames([name, '0', '2', 'k1', 'k2', 'MIN']), ['k1', 'k2'], name);
    assert.deepEqual(keyNames(['MSETEX', '2', 'k1', 'v1', 'k2', 'v2', 'NX', 'PX', '100']), ['k1', 'k2']);
    // numkeys larger than what follows: only the keys present
    assert.deepEqual(keyNames(['EVAL', 'body', '5', 'k1']), ['k1']);
  });

  it('store forms', () => {
    for (const name of ['SUNIONSTORE', 'SINTERSTORE', 'SDIFFSTORE', 'PFMERGE']) {
      assert.deepEqual(positions(name, 'd', 'k1', 'k2'), { kind: 'keys', positions: [1, 2, 3], destination: 1 }, name);
    }
    assert.deepEqual(positions('BITOP', 'AND', 'd', 'k1', 'k2'), { kind: 'keys', positions: [2, 3, 4], destination: 2 });
    assert.deepEqual(positions('BITOP', 'NOT', 'd', 'k1'), { kind: 'keys', positions: [2, 3], destination: 2 });
    assert.deepEqual(positions('SORT', 'k', 'BY', 'store', 'LIMIT', '0', '1', 'GET', 'store', 'STORE', 'd'), {
      kind: 'keys',
      positions: [1, 10],
      destination: 10,
    });
    assert.deepEqual(positions('SORT', 'k', 'ALPHA', 'DESC'), { kind: 'keys', positions: [1] });
    assert.deepEqual(positions('GEORADIUS', 'k', '0', '0', '1', 'km', 'COUNT', '2', 'STORE', 'd'), {
      kind: 'keys',
      positions: [1, 9],
      destination: 9,
    });
    assert.deepEqual(positions('GEORADIUSBYMEMBER', 'k', 'm', '1', 'km', 'STOREDIST', 'd'), {
      kind: 'keys',
      positions: [1, 6],
      destination: 6,
    });
    assert.deepEqual(positions('GEORADIUS', 'k', '0', '0', '1', 'km', 'WITHDIST'), { kind: 'keys', positions: [1] });
    // Both are keys for the cluster; the last one receives the result.
    assert.deepEqual(positions('GEORADIUS', 'k', '0', '0', '1', 'km', 'STOREDIST', 'd1', 'STORE', 'd2'), {
      kind: 'keys',
      positions: [1, 7, 9],
      destination: 9,
    });
  });

  it('streams reads, MIGRATE', () => {
    assert.deepEqual(keyNames(['XREAD', 'COUNT', '2', 'STREAMS', 'k1', 'k2', '0', '0']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['XREADGROUP', 'GROUP', 'streams', 'c', 'NOACK', 'STREAMS', 'k1', '>']), ['k1']);
    assert.deepEqual(keyNames(['MIGRATE', 'h', '1', '', '0', '10', 'AUTH', 'keys', 'KEYS', 'k1', 'k2']), ['k1', 'k2']);
    assert.deepEqual(keyNames(['MIGRATE', 'h', '1', 'k', '0', '10']), ['k']);
  });

  it('key-less commands', () => {
    for (const c of [
      ['FLUSHALL', 'ASYNC'],
      ['FLUSHDB'],
      ['FUNCTION', 'LOAD', 'code'],
      ['FUNCTION', 'DELETE', 'lib'],
      ['SCRIPT', 'LOAD', 'code'],
      ['SELECT', '3'],
      ['SWAPDB', '0', '1'],
      ['MULTI'],
      ['EXEC'],
      ['PING'],
      ['PUBLISH', 'channel', 'msg'],
      ['SPUBLISH', 'channel', 'msg'],
      ['REPLCONF', 'GETACK', '*'],
    ]) {
      assert.deepEqual(keysOf(cmd(...c)), { kind: 'keyless' }, c.join(' '));
    }
  });

  it('unknown commands: args[1] guessed as the key', () => {
    assert.deepEqual(positions('MYMODULE.SET', 'k', 'v'), { kind: 'keys', positions: [1], guessed: true });
    assert.deepEqual(positions('MYMODULE.RESET'), { kind: 'keyless', guessed: true });
    assert.deepEqual(positions('JSON.SET', 'k', '$', '1'), { kind: 'keys', positions: [1], guessed: true });
  });
});

describe('planForCluster', () => {
  it('same-slot multi-key commands stay single', () => {
    const tagged = ['{u}a', '{u}b', '{u}c'];
    const s = slot('u');
    for (const c of [
      ['MSET', tagged[0]!, '1', tagged[1]!, '2'],
      ['DEL', ...tagged],
      ['RENAME', tagged[0]!, tagged[1]!],
      ['SUNIONSTORE', ...tagged],
      ['ZUNIONSTORE', tagged[0]!, '2', tagged[1]!, tagged[2]!],
      ['EVAL', 'body', '2', tagged[0]!, tagged[1]!],
      ['LMOVE', tagged[0]!, tagged[1]!, 'LEFT', 'RIGHT'],
      ['SET', 'u', 'v'],
    ]) {
      const args = cmd(...c);
      const plan = expectKind(planForCluster(args), 'single');
      assert.equal(plan.slot, s, c.join(' '));
      assert.equal(plan.args, args, 'routed as is');
    }
  });

  it('MSET / MSETNX split per slot, order kept inside each part', () => {
    const plan = expectKind(planForCluster(cmd('MSET', A, '1', Bk, '2', '{a}x', '3', A, '4', C, '5')), 'split');
    assert.deepEqual(
      plan.parts.map((p) => [p.slot, str(p.args)]),
      [
        [slot(A), ['MSET', 'a', '1', '{a}x', '3', 'a', '4']],
        [slot(Bk), ['MSET', 'b', '2']],
        [slot(C), ['MSET', 'c', '5']],
      ],
    );
    const nx = expectKind(planForCluster(cmd('msetnx', A, '1', Bk, '2')), 'split');
    assert.deepEqual(nx.parts.map((p) => str(p.args)), [['MSET', 'a', '1'], ['MSET', 'b', '2']]);
  });

  it('DEL / UNLINK / TOUCH / EXISTS split per slot with the command name kept', () => {
    for (const name of ['DEL', 'unlink', 'TOUCH', 'EXISTS']) {
      const plan = expectKind(planForCluster(cmd(name, A, Bk, '{b}2', '{a}2', C)), 'split');
      assert.deepEqual(
        plan.parts.map((p) => [p.slot, str(p.args)]),
        [
          [slot(A), [name, 'a', '{a}2']],
          [slot(Bk), [name, 'b', '{b}2']],
          [slot(C), [name, 'c']],
        ],
      );
    }
  });

  it('MSETEX splits with its expiration and without NX/XX', () => {
    const plan = expectKind(planForCluster(cmd('MSETEX', '3', A, '1', Bk, '2', '{a}z', '3', 'NX', 'PXAT', '1700000000000')), 'split');
    assert.deepEqual(plan.parts.map((p) => str(p.args)), [
      ['MSETEX', '2', 'a', '1', '{a}z', '3', 'PXAT', '1700000000000'],
      ['MSETEX', '1', 'b', '2', 'PXAT', '1700000000000'],
    ]);
  });

  it('JSON.MSET / TS.MADD split by tuples', () => {
    const plan = expectKind(planForCluster(cmd('JSON.MSET', A, '$', '1', Bk, '$', '2', A, '$.x', '3')), 'split');
    assert.deepEqual(plan.parts.map((p) => str(p.args)), [['JSON.MSET', 'a', '$', '1', 'a', '$.x', '3'], ['JSON.MSET', 'b', '$', '2']]);
  });

  it('broadcast, any, and routed key-less commands', () => {
    for (const c of [['FLUSHALL'], ['flushdb', 'ASYNC'], ['FUNCTION', 'LOAD', 'code'], ['FUNCTION', 'DELETE', 'l'], ['FUNCTION', 'FLUSH'], ['FUNCTION', 'RESTORE', 'p'], ['SCRIPT', 'LOAD', 'x'], ['SCRIPT', 'FLUSH']]) {
      expectKind(planForCluster(cmd(...c)), 'broadcast');
    }
    for (const c of [['PUBLISH', 'ch', 'm'], ['PING'], ['SELECT', '0'], ['EVAL', 'return 1', '0'], ['FCALL', 'f', '0'], ['MYMODULE.RESET']]) {
      expectKind(planForCluster(cmd(...c)), 'any');
    }
    expectKind(planForCluster(cmd('FUNCTION', 'LIST')), 'any');
    expectKind(planForCluster(cmd('SCRIPT', 'EXISTS', 'sha')), 'any');
    expectKind(planForCluster(cmd('SCRIPT', 'KILL')), 'unsupported');
    assert.equal(expectKind(planForCluster(cmd('SPUBLISH', 'ch', 'm')), 'single').slot, slot('ch'));
    const restore = expectKind(planForCluster(cmd('RESTORE-ASKING', 'k', '0', 'p', 'REPLACE')), 'single');
    assert.deepEqual(str(restore.args), ['RESTORE', 'k', '0', 'p', 'REPLACE']);
    assert.equal(restore.slot, slot('k'));
  });

  it('unsupported cases say why', () => {
    const cases: [string[], RegExp][] = [
      [['EVAL', 'body', '2', A, Bk], /several slots.*effects/],
      [['EVALSHA', 'sha', '2', A, Bk], /several slots/],
      [['SWAPDB', '0', '1'], /db 0 only/],
      [['MOVE', A, '1'], /db 0 only/],
      [['SELECT', '2'], /SELECT 2/],
      [['COPY', A, '{a}x', 'DB', '1'], /COPY … DB/],
      [['COPY', A, Bk, 'DB', '0', 'REPLACE'], /COPY … DB/],
      [['MIGRATE', 'h', '1', 'k', '0', '10'], /never propagated/],
      [['MULTI'], /planTransaction/],
      [['REPLCONF', 'GETACK', '*'], /never forwarded/],
      [['MGET', A, Bk], /several slots/],
      [['SORT', A, 'BY', 'w_*', 'STORE', Bk], /BY pattern/],
      [['SORT', A, 'GET', 'o_*', 'STORE', '{a}d'], /GET pattern/],
    ];
    for (const [c, why] of cases) {
      const plan = expectKind(planForCluster(cmd(...c)), 'unsupported');
      assert.match(plan.reason, why, c.join(' '));
    }
    // A SORT pattern pinned to the destination's slot is fine, and so are non-reading patterns.
    expectKind(planForCluster(cmd('SORT', A, 'BY', '{b}w_*', 'GET', '#', 'GET', 'fixed', 'STORE', '{b}d')), 'rewrite');
    expectKind(planForCluster(cmd('SORT', A, 'BY', 'nosort', 'STORE', Bk)), 'rewrite');
  });
});

describe('rewrite plans', () => {
  const sa = slot(A);
  const sb = slot(Bk);
  const sc = slot(C);

  it('RENAME: dump, restore with TTL and REPLACE, del', () => {
    const plan = expectKind(planForCluster(cmd('RENAME', A, Bk)), 'rewrite');
    assert.deepEqual(plan.slots, [sa, sb]);
    assert.deepEqual(render(plan.steps), [
      `dump@${sa} a -> $src required`,
      `restore@${sb} b <- $src ttl=keep replace`,
      `call@${sa} DEL a`,
    ]);
  });

  it('RENAMENX: the restore does not replace', () => {
    const plan = expectKind(planForCluster(cmd('renamenx', A, Bk)), 'rewrite');
    assert.deepEqual(render(plan.steps), [`dump@${sa} a -> $src required`, `restore@${sb} b <- $src ttl=keep`, `call@${sa} DEL a`]);
  });

  it('COPY with and without REPLACE keeps the source', () => {
    const plain = expectKind(planForCluster(cmd('COPY', A, Bk)), 'rewrite');
    assert.deepEqual(render(plain.steps), [`dump@${sa} a -> $src required`, `restore@${sb} b <- $src ttl=keep`]);
    const replace = expectKind(planForCluster(cmd('COPY', A, Bk, 'replace')), 'rewrite');
    assert.deepEqual(render(replace.steps), [`dump@${sa} a -> $src required`, `restore@${sb} b <- $src ttl=keep replace`]);
  });

  it('SMOVE: SREM guarded, then SADD', () => {
    const plan = expectKind(planForCluster(cmd('SMOVE', A, Bk, 'm')), 'rewrite');
    assert.deepEqual(render(plan.steps), [`call@${sa} SREM a m expect=nonZero`, `call@${sb} SADD b m`]);
  });

  it('LMOVE LEFT RIGHT pops left and pushes right; RPOPLPUSH pops right and pushes left', () => {
    const lmove = expectKind(planForCluster(cmd('LMOVE', A, Bk, 'left', 'RIGHT')), 'rewrite');
    assert.deepEqual(render(lmove.steps), [`call@${sa} LPOP a -> $element expect=nonNil`, `call@${sb} RPUSH b $element`]);
    const rpl = expectKind(planForCluster(cmd('RPOPLPUSH', A, Bk)), 'rewrite');
    assert.deepEqual(render(rpl.steps), [`call@${sa} RPOP a -> $element expect=nonNil`, `call@${sb} LPUSH b $element`]);
  });

  const t = (n: number, dst = D): string => temporaryKeyInSlotOf(B(dst), n)!.toString('latin1');
  const sd = slot(D);

  it('SUNIONSTORE: foreign inputs copied next to dst, one temporary per distinct key', () => {
    const plan = expectKind(planForCluster(cmd('SUNIONSTORE', D, A, Bk, A, '{d}local', D)), 'rewrite');
    assert.deepEqual(plan.slots, [sd, sa, sb]);
    assert.deepEqual(render(plan.steps), [
      `dump@${sa} a -> $input0`,
      `restore@${sd} ${t(0)} <- $input0 ttl=none replace`,
      `dump@${sb} b -> $input1`,
      `restore@${sd} ${t(1)} <- $input1 ttl=none replace`,
      `call@${sd} SUNIONSTORE d ${t(0)} ${t(1)} ${t(0)} {d}local d`,
      `call@${sd} DEL ${t(0)} ${t(1)} always`,
    ]);
    assert.equal(t(0), '{d}__ferry_tmp__:0');
  });

  it('ZUNIONSTORE with WEIGHTS and AGGREGATE: options untouched', () => {
    const plan = expectKind(planForCluster(cmd('ZUNIONSTORE', '{x}d', '3', A, '{x}in', Bk, 'WEIGHTS', '1', '2', '3', 'AGGREGATE', 'MAX')), 'rewrite');
    const sx = slot('x');
    assert.deepEqual(render(plan.steps), [
      `dump@${sa} a -> $input0`,
      `restore@${sx} {x}__ferry_tmp__:0 <- $input0 ttl=none replace`,
      `dump@${sb} b -> $input1`,
      `restore@${sx} {x}__ferry_tmp__:1 <- $input1 ttl=none replace`,
      `call@${sx} ZUNIONSTORE {x}d 3 {x}__ferry_tmp__:0 {x}in {x}__ferry_tmp__:1 WEIGHTS 1 2 3 AGGREGATE MAX`,
      `call@${sx} DEL {x}__ferry_tmp__:0 {x}__ferry_tmp__:1 always`,
    ]);
  });

  it('BITOP NOT and PFMERGE (whose destination is also an input)', () => {
    const bitop = expectKind(planForCluster(cmd('BITOP', 'NOT', D, C)), 'rewrite');
    assert.deepEqual(render(bitop.steps), [
      `dump@${sc} c -> $input0`,
      `restore@${sd} ${t(0)} <- $input0 ttl=none replace`,
      `call@${sd} BITOP NOT d ${t(0)}`,
      `call@${sd} DEL ${t(0)} always`,
    ]);
    const pf = expectKind(planForCluster(cmd('PFMERGE', D, A, '{d}h')), 'rewrite');
    assert.deepEqual(render(pf.steps), [
      `dump@${sa} a -> $input0`,
      `restore@${sd} ${t(0)} <- $input0 ttl=none replace`,
      `call@${sd} PFMERGE d ${t(0)} {d}h`,
      `call@${sd} DEL ${t(0)} always`,
    ]);
  });

  it('every guard comes before the first write of a plan', () => {
    // A guarding step may itself write (SREM, LPOP): when its guard fails it changed nothing.
    const writes = (s: RewriteStep): boolean => s.op === 'restore' || s.op === 'call';
    const guards = (s: RewriteStep): boolean => (s.op === 'dump' && s.required) || (s.op === 'call' && s.expect !== undefined);
    for (const c of [['RENAME', A, Bk], ['RENAMENX', A, Bk], ['COPY', A, Bk], ['SMOVE', A, Bk, 'm'], ['LMOVE', A, Bk, 'RIGHT', 'LEFT'], ['SUNIONSTORE', D, A]]) {
      const plan = expectKind(planForCluster(cmd(...c)), 'rewrite');
      const firstWrite = plan.steps.findIndex(writes);
      const lastGuard = plan.steps.map(guards).lastIndexOf(true);
      assert.ok(lastGuard <= firstWrite, c.join(' '));
    }
  });
});

describe('temporaryKeyInSlotOf', () => {
  it('uses the tag, or the whole key when it has no }', () => {
    assert.equal(temporaryKeyInSlotOf(B('{user}:x'), 3)?.toString('latin1'), '{user}__ferry_tmp__:3');
    assert.equal(temporaryKeyInSlotOf(B('plain'), 0)?.toString('latin1'), '{plain}__ferry_tmp__:0');
    assert.equal(temporaryKeyInSlotOf(B('a{b'), 0)?.toString('latin1'), '{a{b}__ferry_tmp__:0');
  });

  it('uses a tag chosen for the slot when the key has a } but no hash tag (user}42, {}x, empty)', () => {
    for (const key of ['user}42', 'a}b', '{}x', '']) {
      const t = temporaryKeyInSlotOf(B(key), 0);
      assert.equal(t.toString('latin1'), `{${slotTag(slotOf(B(key)))}}__ferry_tmp__:0`);
      assert.equal(slotOf(t), slotOf(B(key)), key);
    }
  });

  it('always lands in the slot of the key (random binary keys)', () => {
    // A small deterministic PRNG: a failure can be replayed.
    let seed = 0x9e3779b9;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = [0x7b, 0x7d, 0x00, 0xff, 0x61, 0x62, 0x0a, 0x20];
    let made = 0;
    for (let i = 0; i < 20000; i++) {
      const len = rand(12);
      const key = Buffer.alloc(len);
      for (let j = 0; j < len; j++) key[j] = rand(3) === 0 ? rand(256) : alphabet[rand(alphabet.length)]!;
      const n = rand(1000);
      const tmp = temporaryKeyInSlotOf(key, n);
      made++;
      assert.equal(slotOf(tmp), slotOf(key), key.toString('hex'));
      // The temporary's tag is plain, so cluster-key-slot agrees with Redis on it.
      assert.equal(calculateSlot(tmp), slotOf(key), key.toString('hex'));
      assert.notDeepEqual(tmp, temporaryKeyInSlotOf(key, n + 1));
    }
    assert.equal(made, 20000);
  });
});

describe('planTransaction', () => {
  it('one slot: atomic, key-less commands kept in place', () => {
    const commands = [cmd('SET', '{u}a', '1'), cmd('PUBLISH', 'ch', 'x'), cmd('INCR', '{u}b'), cmd('DEL', '{u}a', '{u}c')];
    const plan = planTransaction(commands);
    assert.equal(plan.kind, 'atomic');
    if (plan.kind !== 'atomic') return;
    assert.equal(plan.slot, slot('u'));
    assert.deepEqual(plan.commands.map(str), commands.map(str));
  });

  it('several slots: grouped by slot in order, split commands first split', () => {
    const plan = planTransaction([
      cmd('PUBLISH', 'ch', 'first'),
      cmd('SET', A, '1'),
      cmd('MSET', Bk, '2', '{a}x', '3'),
      cmd('PUBLISH', 'ch', 'after-mset'),
      cmd('INCR', A),
      cmd('DEL', C, Bk),
    ]);
    assert.equal(plan.kind, 'split');
    if (plan.kind !== 'split') return;
    assert.deepEqual(
      plan.groups.map((g) => [g.slot, g.commands.map((c) => str(c).join(' '))]),
      [
        [slot(A), ['PUBLISH ch first', 'SET a 1', 'MSET {a}x 3', 'PUBLISH ch after-mset', 'INCR a']],
        [slot(Bk), ['MSET b 2', 'DEL b']],
        [slot(C), ['DEL c']],
      ],
    );
  });

  it('a rewrite or broadcast inside: a sequence of plans', () => {
    const plan = planTransaction([cmd('SET', A, '1'), cmd('RENAME', A, Bk), cmd('FLUSHALL')]);
    assert.equal(plan.kind, 'sequence');
    if (plan.kind !== 'sequence') return;
    assert.deepEqual(plan.plans.map((p) => p.kind), ['single', 'rewrite', 'broadcast']);
  });

  it('no key at all: any; an unsupported command: unsupported with its index', () => {
    assert.deepEqual(planTransaction([cmd('PUBLISH', 'c', 'm')]).kind, 'any');
    const plan = planTransaction([cmd('SET', A, '1'), cmd('SWAPDB', '0', '1')]);
    assert.equal(plan.kind, 'unsupported');
    if (plan.kind === 'unsupported') {
      assert.equal(plan.index, 1);
      assert.match(plan.reason, /SWAPDB/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Against real servers

/** Runs RewriteSteps on a standalone server (slots ignored), per the contract in split.ts. */
async function execute(redis: Redis, steps: readonly RewriteStep[]): Promise<{ stopped: string | null }> {
  type Dumped = { payload: Buffer; pttl: number } | null;
  const dumps = new Map<string, Dumped>();
  const replies = new Map<string, unknown>();
  let stopped: string | null = null;
  const operand = (o: Operand): Buffer => {
    if (Buffer.isBuffer(o)) return o;
    const v = replies.get(o.register);
    if (Buffer.isBuffer(v)) return v;
    if (typeof v === 'number') return B(String(v));
    throw new Error(`register ${o.register} holds no value`);
  };
  for (const step of steps) {
    if (stopped !== null && !(step.op === 'call' && step.always === true)) continue;
    try {
      if (step.op === 'dump') {
        // Both sent in the same tick: ioredis pipelines them in order on one connection.
        const [payload, pttl] = await Promise.all([redis.dumpBuffer(step.key), redis.pttl(step.key)]);
        const value: Dumped = payload === null || pttl === -2 ? null : { payload, pttl };
        if (value === null && step.required) stopped = `no such key ${step.key.toString('latin1')}`;
        else dumps.set(step.into, value);
      } else if (step.op === 'restore') {
        const value = dumps.get(step.from);
        if (value === undefined) throw new Error(`register ${step.from} not filled`);
        if (value === null) {
          if (step.replace) await redis.del(step.key);
        } else {
          const ttl = step.ttl === 'none' || value.pttl === -1 ? 0 : Math.max(1, value.pttl);
          const extra = step.replace ? ['REPLACE'] : [];
          await redis.callBuffer('RESTORE', step.key, String(ttl), value.payload, ...extra);
        }
      } else {
        const [name, ...rest] = step.args.map(operand);
        const reply = await redis.callBuffer(name!.toString('latin1'), ...rest);
        if (step.into !== undefined) replies.set(step.into, reply);
        if (step.expect === 'nonNil' && reply === null) stopped = 'nothing to pop';
        if (step.expect === 'nonZero' && reply === 0) stopped = 'guard: reply 0';
      }
    } catch (e) {
      stopped = (e as Error).message;
    }
  }
  return { stopped };
}

/** Applies a plan to a standalone server the way a cluster writer would (parts one by one). */
async function applyPlan(redis: Redis, plan: Plan): Promise<void> {
  const run = async (args: readonly Buffer[]): Promise<void> => {
    const [name, ...rest] = args;
    await redis.callBuffer(name!.toString('latin1'), ...rest).catch(() => undefined);
  };
  switch (plan.kind) {
    case 'single':
    case 'broadcast':
    case 'any':
      return run(plan.args);
    case 'split':
      for (const part of plan.parts) await run(part.args);
      return;
    case 'rewrite':
      await execute(redis, plan.steps);
      return;
    case 'unsupported':
      throw new Error(`unsupported: ${plan.reason}`);
  }
}

async function applyTxPlan(redis: Redis, plan: TxPlan): Promise<void> {
  const multi = async (commands: readonly (readonly Buffer[])[]): Promise<void> => {
    const tx = redis.multi();
    for (const [name, ...rest] of commands) tx.callBuffer(name!.toString('latin1'), ...rest);
    await tx.exec();
  };
  switch (plan.kind) {
    case 'atomic':
    case 'any':
      return multi(plan.commands);
    case 'split':
      for (const g of plan.groups) await multi(g.commands);
      return;
    case 'sequence':
      for (const p of plan.plans) await applyPlan(redis, p);
      return;
    case 'unsupported':
      throw new Error(`unsupported: ${plan.reason}`);
  }
}

interface Scenario {
  name: string;
  setup: string[][];
  command: string[];
  /** The plan kind this scenario exercises (asserted, so a scenario cannot test nothing). */
  kind: Plan['kind'];
}

const LONG_TTL = '100000000';

const scenarios: Scenario[] = [
  { name: 'RENAME string with TTL over a list', kind: 'rewrite', setup: [['SET', A, 'v', 'PX', LONG_TTL], ['RPUSH', Bk, 'x']], command: ['RENAME', A, Bk] },
  { name: 'RENAME hash, no TTL, dst with TTL', kind: 'rewrite', setup: [['HSET', A, 'f', '1', 'g', '2'], ['SET', Bk, 'old', 'PX', LONG_TTL]], command: ['RENAME', A, Bk] },
  { name: 'RENAME missing source (divergent target: no change)', kind: 'rewrite', setup: [['SET', Bk, 'keep']], command: ['RENAME', A, Bk] },
  { name: 'RENAMENX to an absent key', kind: 'rewrite', setup: [['SADD', A, 'm1', 'm2']], command: ['RENAMENX', A, Bk] },
  { name: 'RENAMENX onto an existing key (no change)', kind: 'rewrite', setup: [['SET', A, '1'], ['SET', Bk, '2']], command: ['RENAMENX', A, Bk] },
  { name: 'COPY with TTL', kind: 'rewrite', setup: [['ZADD', A, '1', 'x', '2', 'y'], ['PEXPIRE', A, LONG_TTL]], command: ['COPY', A, Bk] },
  { name: 'COPY REPLACE over an existing key', kind: 'rewrite', setup: [['SET', A, 'new'], ['LPUSH', Bk, 'old']], command: ['COPY', A, Bk, 'REPLACE'] },
  { name: 'COPY onto an existing key without REPLACE (no change)', kind: 'rewrite', setup: [['SET', A, 'new'], ['SET', Bk, 'old']], command: ['COPY', A, Bk] },
  { name: 'SMOVE into an existing set', kind: 'rewrite', setup: [['SADD', A, 'm', 'n'], ['SADD', Bk, 'o']], command: ['SMOVE', A, Bk, 'm'] },
  { name: 'SMOVE the last member into a new set', kind: 'rewrite', setup: [['SADD', A, 'm']], command: ['SMOVE', A, Bk, 'm'] },
  { name: 'SMOVE of a missing member (no change)', kind: 'rewrite', setup: [['SADD', A, 'n'], ['SADD', Bk, 'o']], command: ['SMOVE', A, Bk, 'm'] },
  { name: 'LMOVE LEFT RIGHT', kind: 'rewrite', setup: [['RPUSH', A, '1', '2', '3'], ['RPUSH', Bk, 'x', 'y']], command: ['LMOVE', A, Bk, 'LEFT', 'RIGHT'] },
  { name: 'LMOVE RIGHT LEFT', kind: 'rewrite', setup: [['RPUSH', A, '1', '2', '3'], ['RPUSH', Bk, 'x']], command: ['LMOVE', A, Bk, 'RIGHT', 'LEFT'] },
  { name: 'LMOVE LEFT LEFT of the last element', kind: 'rewrite', setup: [['RPUSH', A, 'only']], command: ['LMOVE', A, Bk, 'LEFT', 'LEFT'] },
  { name: 'LMOVE RIGHT RIGHT binary element', kind: 'rewrite', setup: [['RPUSH', A, 'a', '\x00\xff\r\n'], ['RPUSH', Bk, 'x']], command: ['LMOVE', A, Bk, 'RIGHT', 'RIGHT'] },
  { name: 'RPOPLPUSH', kind: 'rewrite', setup: [['RPUSH', A, '1', '2'], ['RPUSH', Bk, 'x']], command: ['RPOPLPUSH', A, Bk] },
  { name: 'LMOVE from an empty list (no change)', kind: 'rewrite', setup: [['RPUSH', Bk, 'x']], command: ['LMOVE', A, Bk, 'LEFT', 'RIGHT'] },
  { name: 'SUNIONSTORE over an existing dst, missing and repeated inputs', kind: 'rewrite', setup: [['SADD', A, '1', '2'], ['SADD', C, '2', '3'], ['SET', D, 'old', 'PX', LONG_TTL], ['SADD', '{d}l', 'z']], command: ['SUNIONSTORE', D, A, Bk, C, A, '{d}l'] },
  { name: 'SINTERSTORE', kind: 'rewrite', setup: [['SADD', A, '1', '2', '3'], ['SADD', Bk, '2', '3', '4']], command: ['SINTERSTORE', D, A, Bk] },
  { name: 'SDIFFSTORE with dst as an input', kind: 'rewrite', setup: [['SADD', D, '1', '2', '3'], ['SADD', A, '2']], command: ['SDIFFSTORE', D, D, A] },
  { name: 'SUNIONSTORE of missing inputs deletes dst', kind: 'rewrite', setup: [['SADD', D, 'old']], command: ['SUNIONSTORE', D, A, Bk] },
  { name: 'ZUNIONSTORE WEIGHTS AGGREGATE MAX', kind: 'rewrite', setup: [['ZADD', A, '1', 'x', '5', 'y'], ['ZADD', Bk, '2', 'x', '1', 'z']], command: ['ZUNIONSTORE', D, '2', A, Bk, 'WEIGHTS', '2', '3', 'AGGREGATE', 'MAX'] },
  { name: 'ZINTERSTORE AGGREGATE MIN with a set input', kind: 'rewrite', setup: [['ZADD', A, '1', 'x', '5', 'y'], ['SADD', Bk, 'x', 'q']], command: ['ZINTERSTORE', D, '2', A, Bk, 'AGGREGATE', 'MIN'] },
  { name: 'ZDIFFSTORE', kind: 'rewrite', setup: [['ZADD', A, '1', 'x', '2', 'y', '3', 'w'], ['ZADD', Bk, '1', 'y']], command: ['ZDIFFSTORE', D, '2', A, Bk] },
  { name: 'ZRANGESTORE BYSCORE LIMIT', kind: 'rewrite', setup: [['ZADD', A, '1', 'a', '2', 'b', '3', 'c', '4', 'd']], command: ['ZRANGESTORE', D, A, '2', '+inf', 'BYSCORE', 'LIMIT', '0', '2'] },
  { name: 'BITOP NOT', kind: 'rewrite', setup: [['SET', C, '\x0f\xf0ab']], command: ['BITOP', 'NOT', D, C] },
  { name: 'BITOP AND / OR / XOR inputs of different lengths', kind: 'rewrite', setup: [['SET', A, 'abc'], ['SET', Bk, '\xff\x00'], ['SET', D, 'old']], command: ['BITOP', 'XOR', D, A, Bk, A] },
  { name: 'PFMERGE into an existing HLL', kind: 'rewrite', setup: [['PFADD', D, 'x', 'y'], ['PFADD', A, 'y', 'z'], ['PFADD', Bk, '1', '2', '3']], command: ['PFMERGE', D, A, Bk] },
  { name: 'GEOSEARCHSTORE STOREDIST', kind: 'rewrite', setup: [['GEOADD', A, '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania']], command: ['GEOSEARCHSTORE', D, A, 'FROMLONLAT', '15', '37', 'BYRADIUS', '200', 'km', 'ASC', 'STOREDIST'] },
  { name: 'GEORADIUS STORE', kind: 'rewrite', setup: [['GEOADD', A, '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania']], command: ['GEORADIUS', A, '15', '37', '200', 'km', 'COUNT', '1', 'STORE', D] },
  { name: 'GEORADIUSBYMEMBER STOREDIST', kind: 'rewrite', setup: [['GEOADD', A, '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania']], command: ['GEORADIUSBYMEMBER', A, 'Palermo', '300', 'km', 'STOREDIST', D] },
  { name: 'SORT ALPHA LIMIT STORE', kind: 'rewrite', setup: [['RPUSH', A, 'pear', 'apple', 'fig', 'kiwi']], command: ['SORT', A, 'ALPHA', 'DESC', 'LIMIT', '0', '3', 'STORE', D] },
  { name: 'SORT BY nosort STORE (list order)', kind: 'rewrite', setup: [['RPUSH', A, '3', '1', '2']], command: ['SORT', A, 'BY', 'nosort', 'STORE', D] },
  { name: 'MSET across slots', kind: 'split', setup: [['SET', A, 'old', 'PX', LONG_TTL]], command: ['MSET', A, '1', Bk, '2', '{a}x', '3', A, '4'] },
  { name: 'MSETNX across slots', kind: 'split', setup: [], command: ['MSETNX', A, '1', Bk, '2', C, '3'] },
  { name: 'DEL across slots', kind: 'split', setup: [['SET', A, '1'], ['SET', Bk, '2'], ['SET', '{a}y', '3'], ['SET', E, 'kept']], command: ['DEL', A, Bk, '{a}y', C] },
  { name: 'UNLINK across slots', kind: 'split', setup: [['SET', A, '1'], ['SADD', Bk, '2']], command: ['UNLINK', Bk, A] },
];

describe('plans are exact on a real server', () => {
  let planned: RedisServer;
  let original: RedisServer;

  before(async () => {
    [planned, original] = await Promise.all([startRedis(), startRedis()]);
  });
  after(async () => {
    await stopAll();
  });

  async function setup(commands: readonly string[][]): Promise<void> {
    for (const s of [planned, original]) {
      const c = s.client();
      await c.flushall();
      for (const [name, ...rest] of commands) await c.callBuffer(name!, ...rest.map(B));
    }
  }

  /** Both keyspaces must match: logically (compareServers) and by DUMP payload. */
  async function assertSameKeyspace(label: string): Promise<void> {
    const diffs = await compareServers(original, planned, { ttlToleranceMs: 1000 });
    assert.equal(diffs.length, 0, `${label}: ${formatDifferences(diffs)}`);
    const [keysA, keysB] = await Promise.all([scanKeys(original.client()), scanKeys(planned.client())]);
    assert.deepEqual([...keysB.keys()].sort(), [...keysA.keys()].sort(), `${label}: same key names (no temporary left)`);
    for (const [name, key] of keysA) {
      const [da, db, type] = await Promise.all([original.client().dumpBuffer(key), planned.client().dumpBuffer(key), original.client().type(key)]);
      // A hashtable-encoded set or hash dumps in iteration order, which depends on each
      // server's random hash seed: compareServers checked those by content.
      if (type === 'set' || type === 'hash') continue;
      assert.ok(da !== null && db !== null && da.equals(db), `${label}: DUMP of ${name} differs`);
    }
  }

  for (const sc of scenarios) {
    it(sc.name, async () => {
      await setup(sc.setup);
      const args = cmd(...sc.command);
      const plan = planForCluster(args);
      assert.equal(plan.kind, sc.kind, JSON.stringify(plan.kind === 'unsupported' ? plan.reason : plan.kind));
      const [name, ...rest] = args;
      await original.client().callBuffer(name!.toString('latin1'), ...rest).catch(() => undefined);
      await applyPlan(planned.client(), plan);
      await assertSameKeyspace(sc.name);
    });
  }

  it('a rewrite stopped by a guard still deletes its temporaries', async () => {
    await setup([['SET', A, 'string'], ['SADD', Bk, 'x']]);
    // SUNIONSTORE over a string input fails on the target (as it would have on the source).
    const plan = expectKind(planForCluster(cmd('SUNIONSTORE', D, A, Bk)), 'rewrite');
    const result = await execute(planned.client(), plan.steps);
    assert.match(result.stopped ?? '', /WRONGTYPE/);
    await original.client().sunionstore(D, A, Bk).catch(() => undefined);
    await assertSameKeyspace('failed store');
  });

  const transactions: { name: string; setup: string[][]; commands: string[][]; kind: TxPlan['kind'] }[] = [
    {
      name: 'transaction in one slot',
      kind: 'atomic',
      setup: [['SET', '{u}a', '1']],
      commands: [['INCR', '{u}a'], ['RENAME', '{u}a', '{u}b'], ['MSET', '{u}c', '1', '{u}d', '2'], ['PUBLISH', 'ch', 'x']],
    },
    {
      name: 'transaction split per slot',
      kind: 'split',
      setup: [['SET', A, '1'], ['RPUSH', Bk, 'x']],
      commands: [['INCR', A], ['MSET', Bk + 'x', '1', C, '2', '{a}q', '3'], ['DEL', A, Bk], ['SET', Bk, 'new'], ['PUBLISH', 'ch', 'x']],
    },
    {
      name: 'transaction with cross-slot moves',
      kind: 'sequence',
      setup: [['RPUSH', A, '1', '2'], ['SADD', C, 'm']],
      commands: [['LMOVE', A, Bk, 'LEFT', 'RIGHT'], ['SMOVE', C, D, 'm'], ['RENAME', Bk, E], ['SUNIONSTORE', '{x}', D, E]],
    },
  ];
  for (const tx of transactions) {
    it(tx.name, async () => {
      await setup(tx.setup);
      const commands = tx.commands.map((c) => cmd(...c));
      const plan = planTransaction(commands);
      assert.equal(plan.kind, tx.kind);
      const multi = original.client().multi();
      for (const [name, ...rest] of commands) multi.callBuffer(name!.toString('latin1'), ...rest);
      await multi.exec();
      await applyTxPlan(planned.client(), plan);
      await assertSameKeyspace(tx.name);
    });
  }
});

describe('oracles from real servers', () => {
  let server: RedisServer;
  let clusterNode: RedisServer;

  before(async () => {
    [server, clusterNode] = await Promise.all([startRedis(), startRedis({ config: { 'cluster-enabled': 'yes' } })]);
  });
  after(async () => {
    await stopAll();
  });

  it('slotOf equals CLUSTER KEYSLOT, including keys cluster-key-slot gets wrong', async () => {
    const keys = ['', 'foo', '{}', '{}{a}', '{}a}', 'x{}y}z', '{a}{b}', '{{a}}', 'a{b', '}{a}', '{\x00}', 'user:{42}:x'].map(B);
    let seed = 12345;
    for (let i = 0; i < 500; i++) {
      const k = Buffer.alloc(i % 9);
      for (let j = 0; j < k.length; j++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        k[j] = [0x7b, 0x7d, seed & 0xff][seed % 3]!;
      }
      keys.push(k);
    }
    const c = clusterNode.client();
    const slots = await Promise.all(keys.map((k) => c.call('CLUSTER', 'KEYSLOT', k) as Promise<number>));
    keys.forEach((k, i) => assert.equal(slotOf(k), slots[i], `key ${k.toString('hex')}`));
  });

  /** Sample invocations: COMMAND GETKEYS must name exactly the keys keysOf finds. */
  const samples: string[][] = [
    ['SET', 'k1', 'v'], ['INCR', 'k1'], ['HSET', 'k1', 'f', 'v'], ['LPUSH', 'k1', 'a'], ['EXPIRE', 'k1', '10'],
    ['PEXPIREAT', 'k1', '1'], ['XADD', 'k1', '*', 'f', 'v'], ['XCLAIM', 'k1', 'g', 'c', '0', '1-1', 'TIME', '1'],
    ['XGROUP', 'CREATE', 'k1', 'g', '$'], ['XGROUP', 'SETID', 'k1', 'g', '$'], ['XGROUP', 'DESTROY', 'k1', 'g'],
    ['XGROUP', 'CREATECONSUMER', 'k1', 'g', 'c'], ['XGROUP', 'DELCONSUMER', 'k1', 'g', 'c'], ['XSETID', 'k1', '1-1'],
    ['RESTORE', 'k1', '0', 'p'], ['RESTORE-ASKING', 'k1', '0', 'p'], ['SETRANGE', 'k1', '0', 'v'], ['APPEND', 'k1', 'v'],
    ['GETDEL', 'k1'], ['GETEX', 'k1', 'PERSIST'], ['LMOVE', 'k1', 'k2', 'LEFT', 'RIGHT'], ['RPOPLPUSH', 'k1', 'k2'],
    ['SMOVE', 'k1', 'k2', 'm'], ['RENAME', 'k1', 'k2'], ['RENAMENX', 'k1', 'k2'], ['COPY', 'k1', 'k2', 'DB', '3', 'REPLACE'],
    ['BITFIELD', 'k1', 'SET', 'u8', '0', '1'], ['HPEXPIREAT', 'k1', '1', 'FIELDS', '1', 'f'],
    ['SORT', 'k1', 'BY', 'w_*', 'LIMIT', '0', '1', 'GET', '#', 'STORE', 'k2'], ['SORT', 'k1', 'STORE', 'k2', 'STORE', 'k3'],
    ['SORT', 'k1', 'ALPHA'], ['PFADD', 'k1', 'a'], ['PFMERGE', 'k1', 'k2', 'k3'], ['PFCOUNT', 'k1', 'k2'], ['GEOADD', 'k1', '0', '0', 'm'],
    ['GEOSEARCHSTORE', 'k1', 'k2', 'FROMLONLAT', '0', '0', 'BYRADIUS', '1', 'km'],
    ['GEORADIUS', 'k1', '0', '0', '1', 'km', 'STORE', 'k2'], ['GEORADIUS', 'k1', '0', '0', '1', 'km', 'COUNT', '1', 'STOREDIST', 'k2', 'STORE', 'k3'],
    ['GEORADIUSBYMEMBER', 'k1', 'm', '1', 'km', 'STOREDIST', 'k2'],
    ['DEL', 'k1', 'k2', 'k3'], ['UNLINK', 'k1', 'k2'], ['TOUCH', 'k1', 'k2'], ['EXISTS', 'k1', 'k2'], ['WATCH', 'k1', 'k2'],
    ['MSET', 'k1', 'v1', 'k2', 'v2'], ['MSETNX', 'k1', 'v1', 'k2', 'v2'], ['MSETEX', '2', 'k1', 'v1', 'k2', 'v2', 'PX', '10'],
    ['EVAL', 'return 1', '2', 'k1', 'k2', 'a'], ['EVALSHA', 'abc', '1', 'k1'], ['EVAL_RO', 'return 1', '1', 'k1'],
    ['EVALSHA_RO', 'abc', '1', 'k1'], ['FCALL', 'f', '2', 'k1', 'k2', 'x'], ['FCALL_RO', 'f', '1', 'k1'],
    ['ZUNIONSTORE', 'k1', '2', 'k2', 'k3', 'WEIGHTS', '1', '2', 'AGGREGATE', 'MAX'], ['ZINTERSTORE', 'k1', '2', 'k2', 'k3'],
    ['ZDIFFSTORE', 'k1', '2', 'k2', 'k3'], ['SINTERCARD', '2', 'k1', 'k2', 'LIMIT', '1'], ['ZINTERCARD', '2', 'k1', 'k2'],
    ['LMPOP', '2', 'k1', 'k2', 'LEFT'], ['ZMPOP', '2', 'k1', 'k2', 'MIN'], ['BLMPOP', '0', '2', 'k1', 'k2', 'LEFT'],
    ['BZMPOP', '0', '2', 'k1', 'k2', 'MIN'], ['ZUNION', '2', 'k1', 'k2'], ['ZINTER', '2', 'k1', 'k2'], ['ZDIFF', '2', 'k1', 'k2'],
    ['SUNIONSTORE', 'k1', 'k2', 'k3'], ['SINTERSTORE', 'k1', 'k2'], ['SDIFFSTORE', 'k1', 'k2', 'k3'],
    ['BITOP', 'AND', 'k1', 'k2', 'k3'], ['BITOP', 'NOT', 'k1', 'k2'], ['ZRANGESTORE', 'k1', 'k2', '0', '-1'],
    ['XREAD', 'COUNT', '1', 'STREAMS', 'k1', 'k2', '0', '0'], ['XREADGROUP', 'GROUP', 'streams', 'c', 'STREAMS', 'k1', '0'],
    ['MIGRATE', 'h', '1', '', '0', '10', 'KEYS', 'k1', 'k2'], ['MIGRATE', 'h', '1', 'k1', '0', '10'], ['BLPOP', 'k1', 'k2', '0'],
    ['BZPOPMIN', 'k1', 'k2', '0'], ['LCS', 'k1', 'k2'], ['MGET', 'k1', 'k2'], ['OBJECT', 'ENCODING', 'k1'], ['XINFO', 'STREAM', 'k1'],
    ['MEMORY', 'USAGE', 'k1'], ['MOVE', 'k1', '2'], ['SPOP', 'k1'], ['HINCRBYFLOAT', 'k1', 'f', '1.5'], ['ZADD', 'k1', '1', 'm'],
    ['SETEX', 'k1', '10', 'v'], ['XACK', 'k1', 'g', '1-1'], ['XTRIM', 'k1', 'MAXLEN', '1'], ['XAUTOCLAIM', 'k1', 'g', 'c', '0', '0'],
    ['FLUSHALL', 'ASYNC'], ['FLUSHDB', 'ASYNC'], ['FUNCTION', 'LOAD', 'code'], ['SCRIPT', 'LOAD', 'x'], ['SELECT', '0'], ['SWAPDB', '0', '1'],
    ['PING', 'hello'], ['PUBLISH', 'ch', 'm'], ['REPLCONF', 'GETACK', '*'], ['EVAL', 'return 1', '0'],
  ];

  it('keysOf names the keys COMMAND GETKEYS names', async (t) => {
    const c = server.client();
    let compared = 0;
    const skipped: string[] = [];
    for (const sample of samples) {
      let expected: string[];
      try {
        expected = ((await c.call('COMMAND', 'GETKEYS', ...sample)) as Buffer[] | string[]).map(String);
      } catch (e) {
        const message = (e as Error).message;
        if (/no key arguments/i.test(message)) expected = [];
        else {
          // Unknown to this server version (7.4/8.x commands), or a form it cannot parse.
          skipped.push(`${sample.join(' ')}: ${message}`);
          continue;
        }
      }
      // GETKEYS lists keys in key-spec order, keysOf in argument order.
      assert.deepEqual(keyNames(sample).sort(), expected.sort(), sample.join(' '));
      compared++;
    }
    t.diagnostic(`${compared} compared with COMMAND GETKEYS, ${skipped.length} unknown to this server: ${skipped.map((s) => s.split(':')[0]).join('; ')}`);
    assert.ok(compared > samples.length - 10);
  });

  it('every command this server knows is in the table', async () => {
    const reply = (await server.client().call('COMMAND')) as unknown[][];
    const names = reply.map((entry) => String(entry[0]).toLowerCase());
    const missing = names.filter((n) => !isKnownCommand(n));
    // Read-only commands with their key first: the guess is right for them, and they never
    // reach a replication stream.
    const readFirstKey = reply
      .filter((e) => (e[2] as string[]).includes('readonly') && e[3] === 1 && e[4] === 1)
      .map((e) => String(e[0]).toLowerCase());
    const unexplained = missing.filter((n) => !readFirstKey.includes(n));
    assert.deepEqual(unexplained, [], `commands without a rule: ${unexplained.join(' ')}`);
  });
});
