/**
 * The parts of the stream path on their own: offset tracker, flow control, throttle, batch
 * channel and sequencer. Transports and back ends here are in-process stand-ins that answer
 * the way a target would (queued refusals, EXECABORT, per-command errors): they are Ferry's own
 * interfaces, not Redis; the end-to-end tests run the same code against real servers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ReplyError, type Reply } from '../../src/resp/reply-decoder.js';
import { OffsetTracker } from '../../src/engine/stream/offset-tracker.js';
import { FlowControl } from '../../src/target/flow-control.js';
import { Throttle } from '../../src/source/throttle.js';
import { BatchChannel, type ChannelWrite } from '../../src/engine/batch-channel.js';
import { TargetRefusals } from '../../src/engine/refusal-policy.js';
import { WriteErrorLog } from '../../src/engine/errors.js';
import { Sequencer, type StreamBackend } from '../../src/engine/stream/sequencer.js';
import type { StreamUnit } from '../../src/engine/stream/front-end.js';
import type { BatchCommand, BatchDone, BatchReply } from '../../src/target/batch.js';
import { refusalKind } from '../../src/target/refusals.js';

const logger = pino({ level: 'silent' });
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function write(name: string, key = name): ChannelWrite {
  return { db: 0, encoded: Buffer.from(`${name} ${key}`), name, key: Buffer.from(key) };
}

function refusals(options: { retryPassing?: boolean; policy?: 'skip' | 'fail' } = {}): TargetRefusals {
  const r = new TargetRefusals({ errors: new WriteErrorLog(logger), retryPassing: options.retryPassing ?? true, writeErrorPolicy: options.policy ?? 'skip' });
  r.backoffMs = () => 1;
  return r;
}

/** A transport that records each batch and lets the test answer it. */
class ScriptedTransport {
  readonly sent: { commands: BatchCommand[]; done: BatchDone }[] = [];
  readonly transport = (commands: BatchCommand[], done: BatchDone): void => {
    this.sent.push({ commands, done });
  };
  names(i: number): string[] {
    return this.sent[i]!.commands.map((c) => c.encoded.toString());
  }
  applied(i: number, replies?: Reply[]): void {
    const batch = this.sent[i]!;
    batch.done({ applied: true, replies: replies ?? batch.commands.map(() => Buffer.from('OK')) });
  }
  refused(i: number, error: string, refusedAt: number | null = null): void {
    this.sent[i]!.done({ applied: false, error, refusedAt, lost: false } satisfies BatchReply);
  }
}

describe('OffsetTracker', () => {
  it('advances only over a gap-free prefix of done units, whatever order they finish in', () => {
    const seen: [number, number][] = [];
    const t = new OffsetTracker((offset, db) => seen.push([offset, db]));
    const a = t.take(10, 0);
    const b = t.take(20, 1);
    const c = t.take(30, 1);
    t.done(c);
    assert.deepEqual(seen, []);
    t.done(a);
    assert.deepEqual(seen, [[10, 0]]);
    t.done(b);
    assert.deepEqual(seen, [
      [10, 0],
      [30, 1],
    ]);
    t.done(b); // twice: ignored
    assert.equal(t.outstanding, 0);
  });

  it('grows past its initial ring and keeps order', () => {
    let last = 0;
    const t = new OffsetTracker((offset) => (last = offset));
    const seqs = Array.from({ length: 5000 }, (_v, i) => t.take(i + 1, 0));
    for (const s of seqs.slice(1).reverse()) t.done(s);
    assert.equal(last, 0);
    t.done(seqs[0]!);
    assert.equal(last, 5000);
  });

  it('tells a barrier when every earlier unit is done', async () => {
    const t = new OffsetTracker(() => undefined);
    const a = t.take(1, 0);
    const b = t.take(2, 0);
    const barrier = t.take(3, 0);
    let passed = false;
    const waiting = t.allBefore(barrier).then(() => (passed = true));
    t.done(b);
    await tick();
    assert.equal(passed, false);
    t.done(a);
    await waiting;
    assert.equal(passed, true);
  });
});

describe('FlowControl', () => {
  it('counts bytes in flight, blocks when the budget is spent and wakes when it is given back', async () => {
    const flow = new FlowControl(100);
    assert.equal(flow.room(), undefined);
    flow.take(60);
    assert.equal(flow.room(), undefined);
    flow.take(60); // one write may exceed the budget once it had room
    const waiting = flow.room();
    assert.ok(waiting instanceof Promise);
    let woke = false;
    void waiting.then(() => (woke = true));
    flow.give(10);
    await tick();
    assert.equal(woke, false, 'still at or over the budget');
    flow.give(50);
    await tick();
    assert.equal(woke, true);
    assert.equal(flow.peak, 120);
  });

  it('rejects waiters once failed', async () => {
    const flow = new FlowControl(10);
    flow.take(10);
    const waiting = flow.waitForRoom();
    flow.fail(new Error('target lost'));
    await assert.rejects(waiting, /target lost/);
    await assert.rejects(flow.waitForRoom(), /target lost/);
  });
});

describe('Throttle', () => {
  it('lets a burst of a tenth of a second through, then asks for pauses at the limit', () => {
    const t = new Throttle(1); // 1 MiB/s
    assert.equal(t.consume(1024), 0);
    let waited = 0;
    for (let i = 0; i < 10; i++) waited = t.consume(100 * 1024);
    // 1 MB taken at once at 1 MB/s: the reader is asked to pause about a second (what it owes).
    assert.ok(waited > 850 && waited < 1100, `waited ${waited} ms`);
  });

  it('is unlimited without a limit, and a new limit applies at once', () => {
    const t = new Throttle(null);
    assert.equal(t.consume(1e9), 0);
    t.setLimitMb(1);
    assert.ok(t.consume(10 * 1024 * 1024) > 5000);
    t.setLimitMb(null);
    assert.equal(t.consume(1e9), 0);
  });
});

describe('refusalKind', () => {
  it('tells passing, redirecting and final refusals apart, EXECABORT by its reason', () => {
    assert.equal(refusalKind("OOM command not allowed when used memory > 'maxmemory'."), 'passing');
    assert.equal(refusalKind("EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'."), 'passing');
    assert.equal(refusalKind('EXECABORT Transaction discarded because of previous errors.'), 'final');
    assert.equal(refusalKind('LOADING Redis is loading the dataset in memory'), 'passing');
    assert.equal(refusalKind('MOVED 3999 127.0.0.1:7002'), 'redirect');
    // What the router hands over once it stops waiting: a cluster not ready yet, not a refused write.
    assert.equal(refusalKind('CLUSTERDOWN The cluster is down'), 'passing');
    assert.equal(refusalKind('TRYAGAIN Multiple keys request during rehashing of slot'), 'passing');
    assert.equal(refusalKind('WRONGTYPE Operation against a key holding the wrong kind of value'), 'final');
  });
});

describe('BatchChannel', () => {
  it('has one batch in flight; what arrives meanwhile forms the next batch', async () => {
    const t = new ScriptedTransport();
    const done: string[] = [];
    const channel = new BatchChannel({ transport: t.transport, policy: refusals() });
    channel.add({ writes: [write('SET', 'a')], done: () => done.push('a'), tag: null });
    await tick();
    channel.add({ writes: [write('SET', 'b')], done: () => done.push('b'), tag: null });
    channel.add({ writes: [write('SET', 'c')], done: () => done.push('c'), tag: null });
    await tick();
    assert.equal(t.sent.length, 1, 'the second batch waits for the first');
    t.applied(0);
    await tick();
    assert.deepEqual(done, ['a']);
    assert.equal(t.sent.length, 2);
    assert.deepEqual(t.names(1), ['SET b', 'SET c']);
    t.applied(1);
    assert.deepEqual(done, ['a', 'b', 'c']);
    assert.ok(channel.idle);
  });

  it('a passing refusal is sent again whole, before anything after it, and holds every channel meanwhile', async () => {
    const policy = refusals();
    const t1 = new ScriptedTransport();
    const t2 = new ScriptedTransport();
    const one = new BatchChannel({ transport: t1.transport, policy });
    const two = new BatchChannel({ transport: t2.transport, policy });
    const done: string[] = [];
    one.add({ writes: [write('SET', 'k')], done: () => done.push('set'), tag: null });
    await tick();
    one.add({ writes: [write('DEL', 'k')], done: () => done.push('del'), tag: null });
    t1.refused(0, 'OOM command not allowed');
    assert.equal(policy.held, true);
    two.add({ writes: [write('SET', 'other')], done: () => done.push('other'), tag: null });
    await tick();
    assert.equal(t2.sent.length, 0, 'another channel starts nothing while one is held');
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(t1.sent.length, 2, 'the refused batch went out again');
    assert.deepEqual(t1.names(1), ['SET k'], 'alone: the DEL behind it waits');
    t1.applied(1);
    assert.equal(policy.held, false);
    await tick();
    assert.deepEqual(t1.names(2), ['DEL k']);
    assert.equal(t2.sent.length, 1, 'released');
    t2.applied(0);
    t1.applied(2);
    assert.deepEqual(done, ['set', 'other', 'del']);
    assert.deepEqual(policy.retriedCounts(), { OOM: 1 });
  });

  it('without retries (manual mode) a passing refusal is reported for every write of the batch', async () => {
    const policy = refusals({ retryPassing: false });
    const t = new ScriptedTransport();
    const channel = new BatchChannel({ transport: t.transport, policy });
    let done = 0;
    channel.add({ writes: [write('SET', 'a'), write('SET', 'b')], done: () => done++, tag: null });
    await tick();
    t.refused(0, 'EXECABORT Transaction discarded because of: OOM command not allowed');
    assert.equal(done, 1);
    assert.equal(policy.errors.count, 2);
    assert.deepEqual(policy.errors.recent.map((e) => e.key), ['a', 'b']);
  });

  it('a write refused when queued is reported and the batch is sent again without it', async () => {
    const policy = refusals();
    const t = new ScriptedTransport();
    const channel = new BatchChannel({ transport: t.transport, policy, checkpoint: () => ({ db: 0, encoded: Buffer.from('SET checkpoint') }) });
    let done = 0;
    channel.add({ writes: [write('SET', 'a'), write('BOGUS', 'b'), write('SET', 'c')], done: () => done++, tag: null });
    await tick();
    assert.deepEqual(t.names(0), ['SET a', 'BOGUS b', 'SET c', 'SET checkpoint']);
    t.refused(0, "ERR unknown command 'BOGUS'", 1);
    assert.deepEqual(t.names(1), ['SET a', 'SET c', 'SET checkpoint']);
    t.applied(1);
    assert.equal(done, 1);
    assert.deepEqual(policy.errors.recent.map((e) => [e.key, e.command]), [['b', 'BOGUS']]);
  });

  it('reports writes that failed when run (the rest of the batch applied); policy fail stops the channel', async () => {
    const skip = refusals();
    const t = new ScriptedTransport();
    const channel = new BatchChannel({ transport: t.transport, policy: skip });
    let done = 0;
    channel.add({ writes: [write('APPEND', 'l'), write('SET', 'x')], done: () => done++, tag: null });
    await tick();
    t.applied(0, [new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'), Buffer.from('OK')]);
    assert.equal(done, 1);
    assert.equal(skip.errors.count, 1);

    const fail = refusals({ policy: 'fail' });
    const t2 = new ScriptedTransport();
    const stopped = new BatchChannel({ transport: t2.transport, policy: fail });
    let done2 = 0;
    stopped.add({ writes: [write('APPEND', 'l')], done: () => done2++, tag: null });
    await tick();
    stopped.add({ writes: [write('SET', 'after')], done: () => done2++, tag: null });
    t2.applied(0, [new ReplyError('WRONGTYPE x')]);
    await tick();
    assert.equal(done2, 0, 'nothing is done after a refusal under policy fail');
    assert.equal(t2.sent.length, 1, 'and nothing more is sent');
    assert.equal(fail.stoppedByPolicy, true);
    await stopped.settle(); // does not hang
  });

  it('commits a checkpoint made from the last piece of each batch', async () => {
    const t = new ScriptedTransport();
    const channel = new BatchChannel<number>({ transport: t.transport, policy: refusals(), checkpoint: (offset) => ({ db: 0, encoded: Buffer.from(`CKPT ${offset}`) }) });
    channel.add({ writes: [write('SET', 'a')], done: () => undefined, tag: 10 });
    await tick();
    channel.add({ writes: [write('SET', 'b')], done: () => undefined, tag: 20 });
    channel.add({ writes: [write('SET', 'c')], done: () => undefined, tag: 30 });
    t.applied(0);
    await tick();
    assert.deepEqual(t.names(0), ['SET a', 'CKPT 10']);
    assert.deepEqual(t.names(1), ['SET b', 'SET c', 'CKPT 30']);
  });
});

/** A back end whose units the test completes by hand, recording the order they were handed over. */
class ManualBackend implements StreamBackend {
  readonly handed: { unit: StreamUnit; done: () => void }[] = [];
  barrierFor = new Set<number>();
  dispatch(unit: StreamUnit, done: () => void): void | Promise<void> {
    this.handed.push({ unit, done });
    if (this.barrierFor.has(unit.endOffset)) return new Promise<void>((resolve) => setTimeout(() => (done(), resolve()), 5));
  }
  settle(): Promise<void> {
    return Promise.resolve();
  }
  abandon(): void {}
}

function unit(endOffset: number, bytes = 10, writes = 1): StreamUnit {
  return { seq: 0, endOffset, dbAfter: 0, writes: Array.from({ length: writes }, () => ({}) as never), transaction: false, bytes };
}

describe('Sequencer', () => {
  it('acknowledges an offset only when it and everything before it are applied', () => {
    const backend = new ManualBackend();
    const acked: number[] = [];
    const s = new Sequencer(backend, new FlowControl(1000), (o) => acked.push(o));
    for (const o of [10, 20, 30]) s.submit(unit(o));
    backend.handed[2]!.done();
    backend.handed[1]!.done();
    assert.deepEqual(acked, []);
    backend.handed[0]!.done();
    assert.deepEqual(acked, [30]);
  });

  it('units without writes advance the offset in order without reaching the back end', () => {
    const backend = new ManualBackend();
    const acked: number[] = [];
    const s = new Sequencer(backend, new FlowControl(1000), (o) => acked.push(o));
    s.submit(unit(10));
    s.submit(unit(15, 1, 0)); // a PING
    assert.equal(backend.handed.length, 1);
    assert.deepEqual(acked, []);
    backend.handed[0]!.done();
    assert.deepEqual(acked, [15]);
  });

  it('pushes back when the byte budget is spent, and a barrier holds later units until it ends', async () => {
    const backend = new ManualBackend();
    // Each unit costs its bytes plus a fixed overhead (256): two fit in 600, a third does not.
    const s = new Sequencer(backend, new FlowControl(600), () => undefined);
    assert.equal(s.submit(unit(10)), undefined);
    assert.equal(s.submit(unit(20)), undefined);
    const pushed = s.submit(unit(30));
    assert.ok(pushed instanceof Promise, 'over budget');
    backend.handed[0]!.done();
    await pushed;

    backend.barrierFor.add(40);
    const during = s.submit(unit(40));
    assert.ok(during instanceof Promise);
    s.submit(unit(50));
    assert.equal(backend.handed.length, 4, 'the unit after the barrier waits');
    await during;
    assert.equal(backend.handed.length, 5);
    assert.equal(backend.handed[4]!.unit.endOffset, 50);
  });
});
