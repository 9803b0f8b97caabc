import type { MigrationProgress } from '../engine/stats.js';

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${UNITS[i]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/** One status line for a terminal: a bar during the snapshot, the lag afterwards. */
export function progressLine(p: MigrationProgress, now = Date.now()): string {
  const s = p.snapshot;
  const errors = p.errors.count > 0 ? `  errors ${p.errors.count}` : '';
  if (p.phase === 'snapshot' || (p.phase === 'connecting' && s.startedAt === null)) {
    if (s.startedAt === null) return `waiting for the source's snapshot...${errors}`;
    const elapsed = Math.max(0.001, (now - s.startedAt) / 1000);
    const fraction =
      s.bytesTotal ? Math.min(1, s.bytesRead / s.bytesTotal) : s.keysExpected ? Math.min(1, s.keys / s.keysExpected) : null;
    const width = 24;
    const filled = fraction === null ? 0 : Math.round(fraction * width);
    const bar = fraction === null ? '' : `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% `;
    const rate = s.bytesRead / elapsed;
    const eta = fraction && fraction > 0 ? formatDuration(elapsed / fraction - elapsed) : '?';
    const keys = s.keysExpected ? `${s.keys.toLocaleString('en-US')}/${s.keysExpected.toLocaleString('en-US')} keys` : `${s.keys.toLocaleString('en-US')} keys`;
    return `snapshot ${bar}${keys}  ${formatBytes(s.bytesRead)}  ${formatBytes(rate)}/s  ETA ${eta}${errors}`;
  }
  if (p.phase === 'incremental') {
    const st = p.stream;
    // Scan mode's lag counts keys waiting to be copied (0: converged).
    if (p.sourceMode?.mode === 'scan') return `incremental (scan)  lag ${st.lagBytes ?? '?'} keys  ${st.commandsForwarded.toLocaleString('en-US')} keys copied${errors}`;
    const lag = st.lagBytes === null ? 'lag ?' : `lag ${formatBytes(st.lagBytes)} (${(st.lagSeconds ?? 0).toFixed(1)} s)`;
    return `incremental  ${lag}  applied offset ${st.appliedOffset}  ${st.commandsForwarded.toLocaleString('en-US')} commands${errors}`;
  }
  return `${p.phase}  ${s.keys.toLocaleString('en-US')} keys${errors}${p.failure ? `  ${p.failure}` : ''}`;
}
