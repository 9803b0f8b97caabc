/** Pieces shared by the benchmarks: loading data, timing Ferry and native replication. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeCommand, type Arg } from '../src/resp/encode.js';
import { RedisConnection } from '../src/resp/connection.js';
import type { RedisServer } from '../test/helpers/redis-server.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Loads `keys` mixed keys (all types, 20% with TTLs) through `send`, which routes each command. */
export async function loadMixedKeys(keys: number, connectionFor: (key: string) => Promise<RedisConnection>): Promise<void> {
  const used = new Set<RedisConnection>();
  const now = Date.now();
  let failures = 0;
  const onReply = (r: unknown): void => {
    if (r instanceof Error) failures++;
  };
  for (let i = 0; i < keys; i++) {
    const kind = i % 20;
    const key = `key:${i}`;
    let cmd: Arg[];
    if (kind < 10) cmd = ['SET', key, kind < 3 ? String(i) : `value-${i}-${'x'.repeat(kind * 10)}`];
    else if (kind < 12) cmd = ['RPUSH', key, ...Array.from({ length: 10 }, (_, j) => `item-${j}`)];
    else if (kind < 14) cmd = ['HSET', key, ...Array.from({ length: 10 }, (_, j) => [`f${j}`, `v${i}-${j}`]).flat()];
    else if (kind < 16) cmd = ['SADD', key, ...Array.from({ length: 10 }, (_, j) => `m${j * i}`)];
    else if (kind < 18) cmd = ['ZADD', key, ...Array.from({ length: 10 }, (_, j) => [j * 1.5, `m${j}`]).flat()];
    else if (kind < 19) cmd = ['XADD', key, '*', 'a', String(i), 'b', 'payload'];
    else cmd = ['SET', key, Buffer.alloc(1024, i % 256)];
    const c = await connectionFor(key);
    used.add(c);
    c.send(encodeCommand(cmd), onReply);
    if (i % 5 === 0) c.send(encodeCommand(['PEXPIREAT', key, now + 3_600_000 + i]), onReply);
    if (c.full) await c.waitForRoom();
  }
  for (const c of used) await c.drain();
  if (failures) throw new Error(`${failures} load commands failed`);
}

export async function info(server: RedisServer, section: string): Promise<string> {
  return server.client().info(section);
}

export function field(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(text)?.[1]?.trim();
}

/** `ferry migrate --method full` in a child process: wall time and peak RSS (VmHWM). */
export async function ferryFull(sourceAddrs: string, targetAddrs: string, extraArgs: string[] = [], nodeArgs: string[] = [], cli = path.join(root, 'dist/cli.js')): Promise<{ seconds: number; peakRssMb: number }> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeArgs, cli, 'migrate', '--source', sourceAddrs, '--target', targetAddrs, '--method', 'full', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let peakKb = 0;
  const sample = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'latin1');
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      if (hwm > peakKb) peakKb = hwm;
    } catch {
      /* exited */
    }
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sample);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`ferry exited ${code}: ${stderr}`);
  return { seconds, peakRssMb: peakKb / 1024 };
}

/** A fresh server doing REPLICAOF until its link is up and its offset equals the source's. */
export async function nativeReplication(source: RedisServer, replica: RedisServer): Promise<number> {
  const started = process.hrtime.bigint();
  await replica.client().call('REPLICAOF', source.host, String(source.port));
  for (;;) {
    const r = await info(replica, 'replication');
    const s = await info(source, 'replication');
    if (field(r, 'master_link_status') === 'up' && field(r, 'slave_repl_offset') === field(s, 'master_repl_offset')) break;
    await new Promise((res) => setTimeout(res, 5));
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Runs bench/parse-rdb.ts in a fresh process, so the parser is measured on a clean heap. */
export async function parserThroughput(file: string): Promise<{ payloadMBps: number; decodeMBps: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/parse-rdb.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`parse-rdb exited ${code}`);
  return JSON.parse(out) as { payloadMBps: number; decodeMBps: number };
}

