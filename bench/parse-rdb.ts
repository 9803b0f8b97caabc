/**
 * RDB parser throughput over a saved snapshot, in a process of its own (a clean heap):
 *
 *   node --import tsx bench/parse-rdb.ts dump.rdb [runs]
 *
 * Prints one JSON line: the best MB/s of `runs` passes in payload mode (what the engine uses
 * for keys it RESTOREs) and in decode mode (every element decoded, the rewrite path). The file is
 * read into memory first and fed in 1 MiB chunks, so disk speed is not measured.
 */
import { readFileSync } from 'node:fs';
import { NEED_DATA, RdbParser } from '../src/rdb/parser.js';

function pass(data: Buffer, wantsPayload: boolean): number {
  const started = process.hrtime.bigint();
  const parser = new RdbParser({ wantsPayload: () => wantsPayload });
  let at = 0;
  for (;;) {
    const e = parser.next();
    if (e === null) break;
    if (e === NEED_DATA) {
      if (at >= data.length) parser.end();
      else parser.push(data.subarray(at, (at += 1 << 20)));
    }
  }
  return data.length / 1024 / 1024 / (Number(process.hrtime.bigint() - started) / 1e9);
}

const file = process.argv[2];
if (!file) throw new Error('usage: parse-rdb.ts FILE [runs]');
const runs = Number(process.argv[3] ?? 4);
const data = readFileSync(file);
let payload = 0;
let decode = 0;
for (let i = 0; i < runs; i++) payload = Math.max(payload, pass(data, true));
for (let i = 0; i < runs; i++) decode = Math.max(decode, pass(data, false));
process.stdout.write(`${JSON.stringify({ payloadMBps: Math.round(payload), decodeMBps: Math.round(decode) })}\n`);
