/**
 * What an error reply from a target means for the write it answers. One place, so the snapshot,
 * the stream and the cluster router agree.
 *
 * - `passing`: the target cannot take writes right now and will later (memory, loading, a busy
 *   script, a replica without its master, a failing save): the write may be sent again, and
 *   nothing written after it may be applied before it.
 * - `redirect`: a cluster node says the slot is elsewhere (MOVED, ASK): the router sends it
 *   again to the right node; the write was not executed. Only a redirection loop reaches a caller.
 *
 * A cluster that is not ready (CLUSTERDOWN: a node failed or a slot is not served; TRYAGAIN: a
 * slot in migration) is waited out by the router for a few seconds, then handed to the caller:
 * it is `passing`, like OOM. Treating it as final dropped every write in flight while a stalled
 * node was marked FAIL for longer than that (each reported as refused, and lost).
 * - `final`: the write itself is refused (WRONGTYPE, a syntax the target does not know, a
 *   collision): sending it again cannot help; it is reported under the write-error policy.
 */
export type RefusalKind = 'passing' | 'redirect' | 'final';

const PASSING = new Set(['OOM', 'LOADING', 'BUSY', 'MASTERDOWN', 'MISCONF', 'NOREPLICAS', 'CLUSTERDOWN', 'TRYAGAIN']);
const REDIRECT = new Set(['MOVED', 'ASK']);

/** The error code: the first word of the reply (`OOM command not allowed...` → `OOM`). */
export function errorCode(error: string): string {
  const space = error.indexOf(' ');
  return space < 0 ? error : error.slice(0, space);
}

export function refusalKind(error: string): RefusalKind {
  let code = errorCode(error);
  // An EXEC refused as a whole names the reason after "because of: " (Redis 7: OOM at EXEC).
  if (code === 'EXECABORT') {
    const m = /because of: (\S+)/.exec(error);
    if (!m) return 'final';
    code = m[1]!;
  }
  if (PASSING.has(code)) return 'passing';
  if (REDIRECT.has(code)) return 'redirect';
  return 'final';
}
