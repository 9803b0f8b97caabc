/**
 * Reading RESP2 replies (RedisConnection never switches to RESP3) into the shapes the
 * comparisons need, plus short printable renderings for difference details.
 */

import { printable } from '../common/printable.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';

/**
 * A reply of a shape the comparison did not expect (a server that is not quite Redis, or a key
 * that changed under us). Caught per key like a ReplyError: it makes a difference, not a crash.
 */
export class UnexpectedReplyError extends Error {
  override readonly name = 'UnexpectedReplyError';
}

export function asBuffer(r: Reply): Buffer {
  if (Buffer.isBuffer(r)) return r;
  if (typeof r === 'number' || typeof r === 'bigint') return Buffer.from(String(r), 'latin1');
  throw new UnexpectedReplyError(`expected a string reply, got ${describeReply(r)}`);
}

export function asNullableBuffer(r: Reply): Buffer | null {
  return r === null ? null : asBuffer(r);
}

export function asInt(r: Reply): number {
  if (typeof r === 'number') return r;
  if (typeof r === 'bigint') return Number(r);
  if (Buffer.isBuffer(r)) {
    const n = Number(r.toString('latin1'));
    if (Number.isFinite(n)) return n;
  }
  throw new UnexpectedReplyError(`expected an integer reply, got ${describeReply(r)}`);
}

export function asArray(r: Reply): Reply[] {
  if (Array.isArray(r)) return r;
  throw new UnexpectedReplyError(`expected an array reply, got ${describeReply(r)}`);
}

/** Text for names and ids (latin1: lossless for any bytes, and ids are ASCII anyway). */
export function asText(r: Reply): string {
  if (r === null) return 'nil';
  if (Buffer.isBuffer(r)) return r.toString('latin1');
  if (typeof r === 'number' || typeof r === 'bigint' || typeof r === 'boolean') return String(r);
  throw new UnexpectedReplyError(`expected a scalar reply, got ${describeReply(r)}`);
}

/** A RESP2 flat [k, v, k, v, ...] array (what RESP3 would send as a map). */
export function flatMap(r: Reply): Map<string, Reply> {
  const a = asArray(r);
  const out = new Map<string, Reply>();
  for (let i = 0; i + 1 < a.length; i += 2) out.set(asText(a[i] as Reply), a[i + 1] as Reply);
  return out;
}

/** [cursor, items] of SCAN / SSCAN / HSCAN / ZSCAN. */
export function scanReply(r: Reply): { cursor: string; items: Reply[] } {
  const a = asArray(r);
  if (a.length !== 2) throw new UnexpectedReplyError(`expected [cursor, items], got ${a.length} elements`);
  return { cursor: asText(a[0] as Reply), items: asArray(a[1] as Reply) };
}

function describeReply(r: Reply): string {
  if (r === null) return 'nil';
  if (r instanceof ReplyError) return `error ${r.message}`;
  if (Array.isArray(r)) return `an array of ${r.length}`;
  return typeof r;
}

/**
 * A zset score as the server prints it → double. Scores are compared as doubles, not as text:
 * 7.0 prints %.17g ("0.10000000000000001") and 7.2+ the shortest form ("0.1") for the same
 * double, and a cross-version migration must not count that as a difference.
 */
export function parseScore(r: Reply): number {
  if (typeof r === 'number') return r;
  const s = asText(r).toLowerCase();
  if (s === 'inf' || s === '+inf') return Number.POSITIVE_INFINITY;
  if (s === '-inf') return Number.NEGATIVE_INFINITY;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new UnexpectedReplyError(`invalid score "${s}"`);
  return v;
}

/**
 * The score as a person reads it: the shortest text that round-trips (1.000000001, not
 * 1.0000000010000001), so two different doubles never print the same.
 */
export function formatScore(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return 'inf';
  if (v === Number.NEGATIVE_INFINITY) return '-inf';
  return String(v);
}

/** A value for a detail message: quoted and escaped, cut after `max` bytes; null is "(none)". */
export function show(v: Buffer | null | undefined, max = 40): string {
  if (v === null || v === undefined) return '(none)';
  return `"${printable(v, max)}"`;
}

/** Index of the first differing byte (the shorter length when one is a prefix of the other). */
export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Binary-safe Map/Set key: latin1 maps bytes 1:1 to UTF-16 code units. */
export function bytesKey(b: Buffer): string {
  return b.toString('latin1');
}

export function fromBytesKey(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** "unknown command" or "unknown subcommand": the server lacks the command, it did not refuse it. */
export function isUnknownCommand(e: unknown): boolean {
  return e instanceof ReplyError && /unknown (sub)?command/i.test(e.message);
}
