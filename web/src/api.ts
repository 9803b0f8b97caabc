/**
 * The console's calls to Ferry's API. The session cookie (HttpOnly, set by sign-in) carries
 * the credential; the console never holds the SK. Mutating calls add X-Ferry-Console: 1, which
 * the server requires of cookie-authenticated changes (a cross-site form cannot send it).
 */
import { formatBytes } from '../../src/common/format';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** The field a DCS validation error names ("Invalid source_instance.addrs in the request. ..."). */
  get field(): string | null {
    return /^Invalid (\S+?)(?: parameter)? in the request\./.exec(this.message)?.[1] ?? null;
  }

  /** The reason after the field ("It must be at most 10240."), or the whole message. */
  get reason(): string {
    const m = /^Invalid \S+?(?: parameter)? in the request\.\s*(.*)$/.exec(this.message);
    return m ? m[1] || 'This value is not valid.' : this.message;
  }
}

let project = '';
export const setProject = (p: string): void => {
  project = p;
};
export const projectId = (): string => project;

/** Called when the session has ended (401): the app shows the sign-in page. */
let onSignedOut: () => void = () => undefined;
export const whenSignedOut = (f: () => void): void => {
  onSignedOut = f;
};

export async function call<T = any>(method: string, path: string, body?: unknown, query?: Record<string, string | number | undefined>): Promise<T> {
  const q = query
    ? Object.entries(query)
        .filter(([, v]) => v !== undefined && v !== '')
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
        .join('&')
    : '';
  const url = path.replace('{project_id}', encodeURIComponent(project)) + (q ? `?${q}` : '');
  const headers: Record<string, string> = { 'X-Ferry-Console': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error_msg: text };
  }
  if (res.status >= 400) {
    if (res.status === 401 && !path.startsWith('/console/api/session')) onSignedOut();
    throw new ApiError(res.status, data.error_code ?? String(res.status), data.error_msg ?? res.statusText);
  }
  return data as T;
}

export interface TaskRow {
  task_id: string;
  task_name: string;
  status: string;
  migration_method: string;
  migration_type: string;
  data_source: string;
  target_instance_addrs: string;
  source_instance_name: string;
  target_instance_name: string;
  created_at: string;
  error_message: string | null;
}

export interface Stats {
  full_migration_progress: string;
  offset: string;
  is_migrating: boolean;
  keys_migrated: string;
  write_errors: string;
  reconnects: string;
}

export interface Progress {
  task_id: string;
  status: string;
  running: boolean;
  phase: string | null;
  source_mode: { mode: string; reason: string | null } | null;
  full_migration_progress: number;
  snapshot: { keys_done: number; keys_total: number | null; bytes_done: number; bytes_total: number | null; started_at: number | null; finished_at: number | null; keys_per_second: number | null; eta_seconds: number | null } | null;
  stream: { received_offset?: number; applied_offset?: number; source_offset?: number | null; lag_bytes: number | null; lag_seconds: number | null; commands_forwarded?: number };
  commands_per_second: number;
  read_bytes_per_second: number;
  keys_migrated: number;
  source_keys: number | null;
  target_keys: number | null;
  reconnects: number;
  full_resyncs: number;
  refused_writes: { count: number; by_code: Record<string, number>; retried_by_code: Record<string, number> };
  shards: { shard: string; phase: string; mode: string; received_offset: number; applied_offset: number; source_offset: number | null; lag_bytes: number | null; lag_seconds: number | null; reconnects: number; full_resyncs: number }[];
  failure: string | null;
  timeline: { at: string; code: string; message: string }[];
  history: { t: number; lag_bytes: number | null; lag_seconds: number | null; commands_per_second: number; read_bytes_per_second: number }[];
}

export interface TaskDetail {
  task_id: string;
  task_name: string;
  description: string;
  status: string;
  migration_method: string;
  migration_type: string;
  resume_mode: string;
  bandwidth_limit_mb: string;
  source_instance: { addrs: string; id: string; name: string; password: string | null } | null;
  target_instance: { addrs: string; id: string; name: string; password: string | null } | null;
  created_at: string;
  updated_at: string;
  error: string;
  source_mode: string;
}

export interface Verification {
  status: 'none' | 'running' | 'done' | 'failed';
  started_at?: string;
  finished_at?: string | null;
  equal?: boolean | null;
  keys_checked?: number | null;
  rounds?: number | null;
  counts?: Record<string, number> | null;
  differences?: unknown[];
  error?: string | null;
}

export interface LogEntry {
  created_at: string;
  log_level: string;
  message: string;
  log_code: string;
}

/** The CLI's formatter, with an en dash for "unknown". */
export function fmtBytes(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : formatBytes(n);
}

export function fmtNum(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString('en-GB', { hour12: false });
}
