/**
 * Runs on the stream path: consecutive plain writes of one receive chunk travel as one
 * RunWrite (one view of the chunk, one write to the target). The front end's gathering is
 * checked on decoded commands; the refusal paths against a real redis-server, through the same
 * BatchChannel and Lane the migration uses: a command of a run that fails when it runs, or is
 * refused when queued, is reported with its own name and key, and the rest of the run stands.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { CommandStreamDecoder } from '../../src/resp/command-stream.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { RedisConnection } from '../../src/resp/connection.js';
import { StreamFrontEnd, RunWrite, type StreamUnit } from '../../src/engine/stream/front-end.js';
import { DbMapper } from '../../src/engine/db-map.js';
import { emptyStreamStats } from '../../src/engine/stats.js';
import { BatchChannel } from '../../src/engine/batch-channel.js';
import { TargetRefusals } from '../../src/engine/refusal-policy.js';
import { WriteErrorLog } from '../../src/engine/errors.js';
import { Lane } from '../../src/target/writer.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

const logger = pino({ level: 'silent' });
const enc = (...args: string[]): Buffer => encodeCommand(args);

/** Feeds `chunks` through a decoder and a coalescing front end, as the applier does. */
function gather(chunks: Buffer[], frontEnd = new StreamFrontEnd(new DbMapper(), emptyStreamStats(), { coalesce: true })): StreamUnit[] {
  const decoder = new CommandStreamDecoder(100);
  const units: StreamUnit[] = [];
  for (const chunk of chunks) {
    for (const command of decoder.push(chunk)) {
      const closed = frontEnd.takeRunnable(command);
      if (closed === null) continue;
      if (closed !== undefined) {
        units.push(closed);
        continue;
      }
      const run = frontEnd.takeRun();
      if (run) units.push(run);
      const unit = frontEnd.take(command);
      if (unit) units.push(unit);
    }
    const run = frontEnd.takeRun();
    if (run) units.push(run);
  }
  return units;
}

describe('stream runs: the front end', () => {
  it('gathers the plain writes of one chunk into one run; SELECT, MULTI/EXEC, PING and the chunk end close it', () => {
    const a = Buffer.concat([enc('SET', 'a', '1'), enc('INCR', 'n'), enc('LPUSH', 'l', 'x'), enc('SELECT', '2'), enc('SET', 'b', '2'), enc('MULTI'), enc('SET', 'c', '3'), enc('EXEC'), enc('PING'), enc('DEL', 'a')]);
    const b = Buffer.concat([enc('SET', 'd', '4'), enc('SET', 'e', '5')]);
    const units = gather([a, b]);
    const shape = units.map((u) => ({
      end: u.endOffset,
      db: u.dbAfter,
      tx: u.transaction,
      writes: u.writes.map((w) => (w instanceof RunWrite ? `run:${w.count}:db${w.db}` : `${w.name}:db${w.db}`)),
    }));
    let off = 100;
    const at = (...bufs: Buffer[]): number => (off += bufs.reduce((n, x) => n + x.length, 0));
    assert.deepEqual(shape, [
      { end: at(enc('SET', 'a', '1'), enc('INCR', 'n'), enc('LPUSH', 'l', 'x')), db: 0, tx: false, writes: ['run:3:db0'] },
      { end: at(enc('SELECT', '2')), db: 2, tx: false, writes: [] },
      { end: at(enc('SET', 'b', '2')), db: 2, tx: false, writes: ['run:1:db2'] },
      { end: at(enc('MULTI'), enc('SET', 'c', '3'), enc('EXEC')), db: 2, tx: true, writes: ['SET:db2'] },
      { end: at(enc('PING')), db: 2, tx: false, writes: [] },
      { end: at(enc('DEL', 'a')), db: 2, tx: false, writes: ['run:1:db2'] },
      { end: at(b), db: 2, tx: false, writes: ['run:2:db2'] },
    ]);
    // A run is the bytes as received, and decodes back to its commands.
    const run = units[0]!.writes[0] as RunWrite;
    assert.deepEqual(run.encoded, Buffer.concat([enc('SET', 'a', '1'), enc('INCR', 'n'), enc('LPUSH', 'l', 'x')]));
    assert.deepEqual(
      run.explode().map((w) => [w.name, w.key?.toString()]),
      [
        ['SET', 'a'],
        ['INCR', 'n'],
        ['LPUSH', 'l'],
      ],
    );
  });

  it('a command cut by a chunk boundary, a prefixed db or a db that is not migrated takes the per-command path', () => {
    const whole = Buffer.concat([enc('SET', 'a', '1'), enc('SET', 'b', '2')]);
    const cut = whole.length - 3;
    const units = gather([whole.subarray(0, cut), whole.subarray(cut)]);
    assert.deepEqual(
      units.map((u) => u.writes.map((w) => (w instanceof RunWrite ? `run:${w.count}` : w.name))),
      [['run:1'], ['SET']],
    );
    const prefixed = new StreamFrontEnd(DbMapper.parse(undefined, { prefixes: DbMapper.parsePrefixes('0=p:') }), emptyStreamStats(), { coalesce: true });
    const p = gather([whole], prefixed);
    assert.deepEqual(
      p.map((u) => u.writes.map((w) => (w instanceof RunWrite ? 'run' : w.key?.toString()))),
      [['p:a'], ['p:b']],
    );
    const filtered = new StreamFrontEnd(DbMapper.parse(undefined, { only: new Set([1]) }), emptyStreamStats(), { coalesce: true });
    assert.deepEqual(
      gather([whole], filtered).map((u) => u.writes.length),
      [0, 0],
    );
  });
});

describe('stream runs: refusals against a real server', () => {
  let server: RedisServer;
  let connection: RedisConnection;
  before(async () => {
    server = await startRedis();
    connection = await RedisConnection.connect({ host: server.host, port: server.port });
  });
  after(async () => {
    connection.destroy('done');
    await server.stop();
  });

  async function apply(runs: RunWrite[]): Promise<{ errors: WriteErrorLog; sent: number }> {
    const errors = new WriteErrorLog(logger);
    const policy = new TargetRefusals({ errors, retryPassing: true, writeErrorPolicy: 'skip' });
    const lane = new Lane(connection, (e) => assert.fail(e));
    let sent = 0;
    const channel = new BatchChannel({
      transport: (commands, done) => {
        sent++;
        lane.sendBatch(commands, done);
      },
      policy,
    });
    let done = 0;
    for (const run of runs) channel.add({ writes: [run], done: () => done++, tag: null });
    await channel.settle();
    assert.equal(done, runs.length);
    return { errors, sent };
  }

  it('a command of a run that fails when it runs (WRONGTYPE) is reported with its key; the rest of the run is applied', async () => {
    const c = server.client();
    await c.flushall();
    await c.rpush('clash', 'x');
    const bytes = Buffer.concat([enc('SET', 'r1', 'a'), enc('APPEND', 'clash', 'y'), enc('INCR', 'r2')]);
    const { errors } = await apply([new RunWrite(0, bytes, 3), new RunWrite(1, enc('SET', 'in1', 'v'), 1)]);
    assert.equal(await c.get('r1'), 'a');
    assert.equal(await c.get('r2'), '1');
    assert.equal(errors.count, 1);
    assert.equal(errors.recent[0]!.key, 'clash');
    assert.match(errors.recent[0]!.error, /WRONGTYPE/);
    await c.select(1);
    assert.equal(await c.get('in1'), 'v', 'a run in db 1 ran in db 1');
    await c.select(0);
  });

  it('a command of a run refused when queued is reported and the batch is sent again without it, in order', async () => {
    const c = server.client();
    await c.flushall();
    const bytes = Buffer.concat([enc('SET', 'q1', 'a'), enc('NOSUCHCOMMAND', 'k'), enc('APPEND', 'q1', 'b')]);
    const { errors, sent } = await apply([new RunWrite(0, bytes, 3)]);
    assert.equal(sent, 2, 'sent again once, without the refused command');
    assert.equal(await c.get('q1'), 'ab');
    assert.equal(errors.count, 1);
    assert.equal(errors.recent[0]!.key, 'k');
  });
});
