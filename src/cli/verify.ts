import { DbMapper } from '../engine/db-map.js';
import type { VerifyReport } from '../verify/index.js';
import { endpointsFor, roleOptions } from './endpoints.js';

export interface VerifyCommandOptions {
  source: string;
  target: string;
  sourceUser?: string;
  sourcePassword?: string;
  targetUser?: string;
  targetPassword?: string;
  rounds?: string;
  ttlToleranceMs?: string;
  json?: boolean;
  dbs?: string;
  dbPrefix?: string;
  dbMap?: string;
}

function positive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`invalid ${name} "${text}": a whole number`);
  return n;
}

function summary(r: VerifyReport): string {
  const counts = Object.entries(r.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const lines = [`${r.equal ? 'equal' : 'DIFFERENT'}: ${r.keysChecked.toLocaleString('en-US')} keys checked in ${r.rounds} round(s), ${(r.durationMs / 1000).toFixed(1)} s${counts ? ` (${counts})` : ''}`];
  for (const d of r.differences) lines.push(`  db${d.db} ${d.kind} ${d.key}: ${d.detail}`);
  return lines.join('\n');
}

/**
 * `ferry verify --source ADDRS --target ADDRS`: compares both directions, every db and key
 * (value, type, TTL, stream groups, functions). Exit code 0 only when nothing differs.
 */
export async function verifyCommand(opts: VerifyCommandOptions): Promise<number> {
  const source = endpointsFor(opts.source, roleOptions(opts, 'source'), 'source');
  const target = endpointsFor(opts.target, roleOptions(opts, 'target'), 'target');
  const { verifyDeployments } = await import('../verify/index.js');
  const report = await verifyDeployments({
    source,
    target,
    rounds: positive(opts.rounds, '--rounds', 1) || 1,
    ttlToleranceMs: positive(opts.ttlToleranceMs, '--ttl-tolerance-ms', 2000),
    dbs: DbMapper.parse(opts.dbMap, { only: DbMapper.parseDbList(opts.dbs), prefixes: DbMapper.parsePrefixes(opts.dbPrefix) }),
  });
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${summary(report)}\n`);
  return report.equal ? 0 : 3;
}
