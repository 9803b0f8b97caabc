/**
 * Function libraries (FUNCTION LIST WITHCODE, 7.0+): server-wide, so compared once per target
 * master rather than per key. A cluster needs its libraries on every master (FCALL runs where
 * the key's slot lives), so each target master is held against the source; a cluster
 * source's first master is the reference (FUNCTION LOAD reaches one node per call, so its
 * masters are expected to agree, and the migration copies from each of them alike).
 */

import { printable } from '../common/printable.js';
import { ReplyError } from '../resp/reply-decoder.js';
import { asArray, asBuffer, flatMap } from './replies.js';
import { unlessUnknown, type Conn, type Side } from './sides.js';
import type { Difference } from './types.js';

const NO_SUPPORT = 'no FUNCTION support';

type Libraries = { ok: true; libs: Map<string, Buffer> } | { ok: false; why: string };

/** Library name (latin1) → code; `ok: false` when the server cannot say. */
async function libraries(c: Conn): Promise<Libraries> {
  if (!c.caps.functions) return { ok: false, why: NO_SUPPORT };
  try {
    const r = await unlessUnknown(c.caps, 'functions', () => c.call(['FUNCTION', 'LIST', 'WITHCODE']));
    if (r === undefined) return { ok: false, why: NO_SUPPORT };
    const libs = new Map<string, Buffer>();
    for (const lib of asArray(r)) {
      const m = flatMap(lib);
      libs.set(asBuffer(m.get('library_name') ?? null).toString('latin1'), asBuffer(m.get('library_code') ?? null));
    }
    return { ok: true, libs };
  } catch (e) {
    // An ACL may forbid FUNCTION LIST: a finding to report, not a reason to abort the run.
    if (e instanceof ReplyError) return { ok: false, why: `FUNCTION LIST failed: ${e.message}` };
    throw e;
  }
}

function name(latin1: string): string {
  return printable(Buffer.from(latin1, 'latin1'));
}

export async function compareFunctions(source: Side, target: Side): Promise<Difference[]> {
  const out: Difference[] = [];
  const diff = (key: string, detail: string): void => {
    out.push({ db: -1, key, kind: 'function', detail });
  };
  const sc = await source.conn(0, 0);
  const ref = await libraries(sc);
  if (!ref.ok && ref.why !== NO_SUPPORT) {
    diff('*', `cannot list the source's libraries on ${sc.address}: ${ref.why}`);
    return out;
  }
  // A server without FUNCTION has no libraries: the target must have none either.
  const refLibs = ref.ok ? ref.libs : new Map<string, Buffer>();
  for (let i = 0; i < target.masters.length; i++) {
    const tc = await target.conn(i, 0);
    const where = target.cluster ? ` (target master ${tc.address})` : '';
    const mine = await libraries(tc);
    if (!mine.ok) {
      for (const lib of refLibs.keys()) diff(name(lib), `library missing on target${where}: ${mine.why}`);
      continue;
    }
    for (const [lib, code] of refLibs) {
      const other = mine.libs.get(lib);
      if (other === undefined) diff(name(lib), `library missing on target${where}`);
      else if (!other.equals(code)) diff(name(lib), `library code differs${where}`);
    }
    for (const lib of mine.libs.keys()) if (!refLibs.has(lib)) diff(name(lib), `library only on target${where}`);
  }
  return out;
}
