import type { MigrationProgress } from '../engine/stats.js';
import { formatBytes } from './progress.js';
import { count } from './output.js';

/** What a finished migration did, for the last line(s) of `ferry migrate` and its --json. */
export interface MigrationSummary {
  outcome: MigrationProgress['phase'];
  durationMs: number;
  keys: number;
  keysByType: Record<string, number>;
  expiredSkipped: number;
  filtered: number;
  snapshotBytes: number;
  /** Snapshot duration and rate (bytes and keys per second over the snapshot phase). */
  snapshotMs: number | null;
  bytesPerSecond: number | null;
  keysPerSecond: number | null;
  /** Command stream bytes applied (all shards) and commands forwarded. */
  streamBytes: number;
  commandsForwarded: number;
  refusedWrites: number;
  refusedByCode: Record<string, number>;
  reconnects: number;
  fullResyncs: number;
}

export function summarize(p: MigrationProgress, startedAt: number, streamStart: number | null, now = Date.now()): MigrationSummary {
  const s = p.snapshot;
  const snapshotMs = s.startedAt !== null ? (s.finishedAt ?? now) - s.startedAt : null;
  const written = s.restored + s.rewritten;
  const seconds = snapshotMs !== null ? Math.max(snapshotMs, 1) / 1000 : null;
  return {
    outcome: p.phase,
    durationMs: now - startedAt,
    keys: written,
    keysByType: { ...(s.keysByType ?? {}) },
    expiredSkipped: s.expiredSkipped,
    filtered: s.filtered,
    snapshotBytes: s.bytesRead,
    snapshotMs,
    bytesPerSecond: seconds !== null ? Math.round(s.bytesRead / seconds) : null,
    keysPerSecond: seconds !== null ? Math.round(written / seconds) : null,
    streamBytes: streamStart === null ? 0 : Math.max(0, p.stream.appliedOffset - streamStart),
    commandsForwarded: p.stream.commandsForwarded,
    refusedWrites: p.errors.count,
    refusedByCode: { ...p.errors.byCode },
    reconnects: p.reconnects,
    fullResyncs: p.fullResyncs,
  };
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function byCount(o: Record<string, number>): string {
  return Object.entries(o)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${count(n)}`)
    .join(', ');
}

/** A few plain lines: what was copied, how fast, what was refused, how often the link was re-made. */
export function summaryText(m: MigrationSummary): string {
  const lines: string[] = [];
  const types = byCount(m.keysByType);
  lines.push(`${m.outcome}: ${count(m.keys)} keys${types ? ` (${types})` : ''} in ${seconds(m.durationMs)}`);
  if (m.snapshotMs !== null) {
    lines.push(`  snapshot: ${formatBytes(m.snapshotBytes)} in ${seconds(m.snapshotMs)}, ${formatBytes(m.bytesPerSecond ?? 0)}/s, ${count(m.keysPerSecond ?? 0)} keys/s`);
  }
  const skipped = [m.expiredSkipped ? `${count(m.expiredSkipped)} expired` : '', m.filtered ? `${count(m.filtered)} not selected (--dbs)` : ''].filter(Boolean);
  if (skipped.length) lines.push(`  skipped: ${skipped.join(', ')}`);
  if (m.commandsForwarded > 0 || m.streamBytes > 0) lines.push(`  stream: ${count(m.commandsForwarded)} commands, ${formatBytes(m.streamBytes)}`);
  lines.push(`  refused writes: ${m.refusedWrites === 0 ? 'none' : `${count(m.refusedWrites)} (${byCount(m.refusedByCode)})`}`);
  lines.push(`  source link: ${count(m.reconnects)} reconnects, ${count(m.fullResyncs)} full resyncs`);
  return lines.join('\n');
}
