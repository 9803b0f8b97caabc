import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, fmtBytes, fmtDuration, fmtNum, fmtTime, type LogEntry, type Progress, type TaskDetail, type Verification } from './api';
import { TimeChart } from './chart';
import { Confirm } from './confirm';
import { StatusBadge } from './tasks';

const LOG_PAGE = 20;
const ACTIVE = ['FULLMIGRATING', 'INCRMIGEATING', 'MIGRATING'];

function Tile({ label, value, metric }: { label: string; value: string; metric: string }) {
  return (
    <div class="tile">
      <span class="muted">{label}</span>
      <strong data-metric={metric}>{value}</strong>
    </div>
  );
}

function Logs({ id, refresh }: { id: string; refresh: number }) {
  const [level, setLevel] = useState('');
  const [offset, setOffset] = useState(0);
  const [logs, setLogs] = useState<LogEntry[]>([]);
  const [total, setTotal] = useState(0);
  useEffect(() => {
    call<{ log_num: number; migration_logs: LogEntry[] }>('GET', `/v2/{project_id}/migration-task/${encodeURIComponent(id)}/logs`, undefined, { offset, limit: LOG_PAGE, log_level: level || undefined })
      .then((r) => {
        setLogs(r.migration_logs);
        setTotal(r.log_num);
      })
      .catch(() => undefined);
  }, [id, level, offset, refresh]);
  return (
    <section aria-labelledby="logs-title" class="card">
      <div class="row spread">
        <h2 id="logs-title">Logs</h2>
        <div class="row">
          <label for="log-level">Level</label>
          <select
            id="log-level"
            value={level}
            onChange={(e) => {
              setOffset(0);
              setLevel((e.target as HTMLSelectElement).value);
            }}
          >
            <option value="">all</option>
            <option value="INFO">INFO</option>
            <option value="WARN">WARN</option>
            <option value="ERROR">ERROR</option>
          </select>
        </div>
      </div>
      <div class="scroll">
        <table class="logs">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Level</th>
              <th scope="col">Code</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {logs.map((l) => (
              <tr class={`l-${l.log_level.toLowerCase()}`}>
                <td>{fmtTime(l.created_at)}</td>
                <td>{l.log_level}</td>
                <td>{l.log_code}</td>
                <td class="msg">{l.message}</td>
              </tr>
            ))}
            {logs.length === 0 && (
              <tr>
                <td colSpan={4} class="muted">
                  No log entries.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav class="row" aria-label="Log pages">
        <button type="button" class="secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - LOG_PAGE))}>
          Older
        </button>
        <span class="muted">
          {total === 0 ? 0 : offset + 1}–{Math.min(total, offset + LOG_PAGE)} of {total}
        </span>
        <button type="button" class="secondary" disabled={offset + LOG_PAGE >= total} onClick={() => setOffset(offset + LOG_PAGE)}>
          Newer
        </button>
      </nav>
    </section>
  );
}

function VerifyCard({ id, status }: { id: string; status: string }) {
  const [v, setV] = useState<Verification | null>(null);
  const [rounds, setRounds] = useState('1');
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    call<Verification>('GET', `/v2/{project_id}/migration-task/${encodeURIComponent(id)}/verify`).then(setV).catch(() => undefined);
    const t = setTimeout(() => setTick((n) => n + 1), v?.status === 'running' ? 1500 : 5000);
    return () => clearTimeout(t);
  }, [id, tick]);
  const start = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      setV(await call<Verification>('POST', `/v2/{project_id}/migration-task/${encodeURIComponent(id)}/verify`, { rounds: /^\d+$/.test(rounds) ? Number(rounds) : rounds }));
      setTick((n) => n + 1);
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    }
  };
  const diffs = v?.counts ? Object.entries(v.counts).filter(([, n]) => n > 0) : [];
  return (
    <section aria-labelledby="verify-title" class="card">
      <h2 id="verify-title">Verification</h2>
      <form class="row" onSubmit={start} novalidate>
        <label for="verify-rounds">Rounds</label>
        <input id="verify-rounds" inputMode="numeric" size={3} value={rounds} onInput={(e) => setRounds((e.target as HTMLInputElement).value)} />
        <button type="submit" class="secondary" disabled={v?.status === 'running' || status === 'RUNNING'}>
          Start verification
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p role="status" data-metric="verify-status">
        {!v || v.status === 'none'
          ? 'Never verified.'
          : v.status === 'running'
            ? `Running since ${fmtTime(v.started_at ?? '')}…`
            : v.status === 'failed'
              ? `Failed: ${v.error}`
              : v.equal
                ? `Equal: ${fmtNum(v.keys_checked)} keys checked (${fmtTime(v.finished_at ?? '')}).`
                : `Differences found in ${fmtNum(v.keys_checked)} keys checked: ${diffs.map(([k, n]) => `${k} ${n}`).join(', ')}.`}
      </p>
    </section>
  );
}

export function TaskPage({ id }: { id: string }) {
  const [task, setTask] = useState<TaskDetail | null>(null);
  const [p, setP] = useState<Progress | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [confirm, setConfirm] = useState<'stop' | 'delete' | null>(null);
  const [bandwidth, setBandwidth] = useState<string | null>(null);
  const [resume, setResume] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const path = `/v2/{project_id}/migration-task/${encodeURIComponent(id)}`;

  useEffect(() => {
    let live = true;
    Promise.all([call<TaskDetail>('GET', path), call<Progress>('GET', `${path}/progress`)])
      .then(([t, pr]) => {
        if (!live) return;
        setTask(t);
        setP(pr);
        setError(null);
      })
      .catch((e) => live && setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)));
    const timer = setTimeout(() => setTick((n) => n + 1), 2000);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [id, tick]);

  if (!task) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;

  const act = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    setConfirm(null);
    setError(null);
    try {
      await fn();
      setNotice(what);
      setTick((n) => n + 1);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    }
  };

  const update = async (e: Event): Promise<void> => {
    e.preventDefault();
    setFieldErrors({});
    const bw = (bandwidth ?? task.bandwidth_limit_mb).trim();
    const body: Record<string, unknown> = { resume_mode: resume ?? task.resume_mode };
    if (bw !== '') body.bandwidth_limit_mb = /^\d+$/.test(bw) ? Number(bw) : bw;
    try {
      await call('PUT', path, body);
      setNotice(`Updated: resume mode ${body.resume_mode}${bw ? `, bandwidth ${bw} MB/s` : ''}.`);
      setBandwidth(null);
      setResume(null);
      setTick((n) => n + 1);
    } catch (err) {
      if (err instanceof ApiError && err.field) setFieldErrors({ [err.field]: err.reason });
      else setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    }
  };

  const s = p?.snapshot ?? null;
  const hist = p?.history ?? [];
  const times = hist.map((h) => h.t);
  const canStop = ACTIVE.includes(task.status);
  const canRestart = (task.status === 'FAILED' || task.status === 'TERMINATED') && task.migration_type === 'online_migration';
  const codes = Object.entries(p?.refused_writes.by_code ?? {});

  return (
    <section aria-labelledby="task-title">
      <div class="row spread">
        <h1 id="task-title">{task.task_name}</h1>
        <StatusBadge status={task.status} />
      </div>
      <p class="muted addr">
        {task.source_instance?.addrs ?? 'backup files'} → {task.target_instance?.addrs ?? '–'} · {task.migration_method || 'not configured'} · created {fmtTime(task.created_at)}
      </p>
      {task.error && (
        <p class="error" role="alert">
          {task.error}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <div class="row" role="toolbar" aria-label="Task actions">
        {task.status === 'RUNNING' && !task.migration_method && (
          <a class="button" href={`#/tasks/${encodeURIComponent(id)}/configure`}>
            Configure
          </a>
        )}
        <button type="button" class="secondary" disabled={!canStop} onClick={() => setConfirm('stop')}>
          Stop
        </button>
        <button type="button" class="secondary" disabled={!canRestart} onClick={() => void act('Restarted.', () => call('POST', '/v2/{project_id}/migration-tasks/batch-restart', { migration_tasks: [id] }))}>
          Restart
        </button>
        <button type="button" class="danger" onClick={() => setConfirm('delete')}>
          Delete
        </button>
      </div>

      <form class="card row wrap" onSubmit={update} novalidate aria-label="Task settings">
        <div class={`field${fieldErrors.bandwidth_limit_mb ? ' invalid' : ''}`}>
          <label for="bandwidth_limit_mb">Bandwidth limit (MB/s)</label>
          <input
            id="bandwidth_limit_mb"
            inputMode="numeric"
            aria-invalid={!!fieldErrors.bandwidth_limit_mb}
            aria-describedby={fieldErrors.bandwidth_limit_mb ? 'bandwidth-error' : undefined}
            value={bandwidth ?? task.bandwidth_limit_mb}
            placeholder="no limit"
            onInput={(e) => setBandwidth((e.target as HTMLInputElement).value)}
          />
          {fieldErrors.bandwidth_limit_mb && (
            <small id="bandwidth-error" class="error" role="alert">
              {fieldErrors.bandwidth_limit_mb}
            </small>
          )}
        </div>
        <div class="field">
          <label for="resume_mode">Resume mode</label>
          <select id="resume_mode" value={resume ?? task.resume_mode} onChange={(e) => setResume((e.target as HTMLSelectElement).value)}>
            <option value="auto">auto</option>
            <option value="manual">manual</option>
          </select>
        </div>
        <button type="submit" class="secondary">
          Apply
        </button>
      </form>

      <div class="tiles">
        <Tile label="Phase" value={p?.phase ?? (task.status === 'SUCCESS' ? 'done' : '–')} metric="phase" />
        <Tile label="Lag" value={fmtBytes(p?.stream.lag_bytes)} metric="lag-bytes" />
        <Tile label="Lag (time)" value={p?.stream.lag_seconds === null || p?.stream.lag_seconds === undefined ? '–' : `${p.stream.lag_seconds.toFixed(1)} s`} metric="lag-seconds" />
        <Tile label="Commands/s" value={fmtNum(p?.commands_per_second)} metric="ops" />
        <Tile label="Read" value={`${fmtBytes(p?.read_bytes_per_second)}/s`} metric="read-rate" />
        <Tile label="Keys migrated" value={fmtNum(p?.keys_migrated)} metric="keys" />
      </div>

      <div class="grid">
        <section aria-labelledby="snapshot-title" class="card">
          <h2 id="snapshot-title">Snapshot</h2>
          <progress max={100} value={p?.full_migration_progress ?? 0} aria-label="Full migration progress">
            {p?.full_migration_progress ?? 0} %
          </progress>
          <dl class="facts">
            <dt>Progress</dt>
            <dd data-metric="progress">{p?.full_migration_progress ?? 0} %</dd>
            <dt>Keys</dt>
            <dd>
              {fmtNum(s?.keys_done)} / {fmtNum(s?.keys_total)}
            </dd>
            <dt>Bytes</dt>
            <dd>
              {fmtBytes(s?.bytes_done)} / {s?.bytes_total ? fmtBytes(s.bytes_total) : 'unknown (diskless)'}
            </dd>
            <dt>Rate</dt>
            <dd>{s?.keys_per_second !== null && s?.keys_per_second !== undefined ? `${fmtNum(s.keys_per_second)} keys/s` : '–'}</dd>
            <dt>ETA</dt>
            <dd>{fmtDuration(s?.eta_seconds)}</dd>
          </dl>
        </section>
        <section aria-labelledby="timeline-title" class="card">
          <h2 id="timeline-title">Timeline</h2>
          <ol class="timeline">
            {(p?.timeline ?? []).map((e) => (
              <li>
                <time dateTime={e.at}>{fmtTime(e.at)}</time> <span class="code">{e.code}</span> {e.message}
              </li>
            ))}
          </ol>
        </section>
      </div>

      <section aria-labelledby="charts-title" class="card">
        <h2 id="charts-title">Lag and throughput, last hour</h2>
        <div class="grid">
          <TimeChart
            title="Lag"
            times={times}
            axes={['bytes', 'seconds']}
            series={[
              { label: 'lag bytes', scale: 'y', stroke: '#c2410c', values: hist.map((h) => h.lag_bytes) },
              { label: 'lag seconds', scale: 'y2', stroke: '#7c3aed', values: hist.map((h) => h.lag_seconds) },
            ]}
          />
          <TimeChart
            title="Throughput"
            times={times}
            axes={['commands/s', 'bytes/s']}
            series={[
              { label: 'commands/s', scale: 'y', stroke: '#0369a1', values: hist.map((h) => h.commands_per_second) },
              { label: 'bytes read/s', scale: 'y2', stroke: '#15803d', values: hist.map((h) => h.read_bytes_per_second) },
            ]}
          />
        </div>
      </section>

      <div class="grid">
        <section aria-labelledby="counters-title" class="card">
          <h2 id="counters-title">Counters</h2>
          <dl class="facts">
            <dt>Reconnects</dt>
            <dd data-metric="reconnects">{fmtNum(p?.reconnects)}</dd>
            <dt>Full resyncs</dt>
            <dd data-metric="full-resyncs">{fmtNum(p?.full_resyncs)}</dd>
            <dt>Refused writes</dt>
            <dd data-metric="refused">{fmtNum(p?.refused_writes.count)}</dd>
            {codes.map(([code, n]) => (
              <>
                <dt class="sub">{code}</dt>
                <dd>{fmtNum(n)}</dd>
              </>
            ))}
          </dl>
        </section>
        <section aria-labelledby="shards-title" class="card">
          <h2 id="shards-title">Shards</h2>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Source</th>
                  <th scope="col">Phase</th>
                  <th scope="col">Applied / received / source offset</th>
                  <th scope="col">Lag</th>
                </tr>
              </thead>
              <tbody>
                {(p?.shards ?? []).map((sh) => (
                  <tr>
                    <td class="addr">{sh.shard}</td>
                    <td>{sh.phase}</td>
                    <td>
                      {fmtNum(sh.applied_offset)} / {fmtNum(sh.received_offset)} / {fmtNum(sh.source_offset)}
                    </td>
                    <td>{fmtBytes(sh.lag_bytes)}</td>
                  </tr>
                ))}
                {(p?.shards.length ?? 0) === 0 && (
                  <tr>
                    <td colSpan={4} class="muted">
                      No worker runs for this task.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </section>
      </div>

      <VerifyCard id={id} status={task.status} />
      <Logs id={id} refresh={Math.floor(tick / 3)} />

      {confirm && (
        <Confirm
          message={confirm === 'stop' ? `Stop ${task.task_name}?` : `Delete ${task.task_name}? This cannot be undone.`}
          confirmLabel={confirm === 'stop' ? 'Stop' : 'Delete'}
          onConfirm={() =>
            confirm === 'stop'
              ? void act('Stopping.', () => call('POST', `${path}/stop`, {}))
              : void call('DELETE', '/v2/{project_id}/migration-tasks/delete', { task_id_list: [id] }).then(() => (location.hash = '#/tasks'))
          }
          onCancel={() => setConfirm(null)}
        />
      )}
    </section>
  );
}
