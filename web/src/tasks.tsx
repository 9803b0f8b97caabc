import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, fmtBytes, fmtTime, type Stats, type TaskRow } from './api';
import { Confirm } from './confirm';

const PAGE = 20;

/** The phase a DCS status stands for. */
export function phaseOf(status: string): string {
  switch (status) {
    case 'RUNNING':
      return 'not configured';
    case 'FULLMIGRATING':
      return 'snapshot';
    case 'INCRMIGEATING':
      return 'incremental';
    case 'MIGRATING':
      return 'import';
    case 'TERMINATING':
      return 'stopping';
    default:
      return 'ended';
  }
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge s-${status.toLowerCase()}`}>{status}</span>;
}

type Batch = 'stop' | 'restart' | 'delete';

export function TaskList() {
  const [filter, setFilter] = useState('');
  const [applied, setApplied] = useState('');
  const [offset, setOffset] = useState(0);
  const [rows, setRows] = useState<TaskRow[]>([]);
  const [count, setCount] = useState(0);
  const [stats, setStats] = useState<Record<string, Stats>>({});
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirm, setConfirm] = useState<Batch | null>(null);
  const [message, setMessage] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    call<{ count: number; migration_tasks: TaskRow[] }>('GET', '/v2/{project_id}/migration-tasks', undefined, { offset, limit: PAGE, name: applied })
      .then(async (r) => {
        if (!live) return;
        setRows(r.migration_tasks);
        setCount(r.count);
        const all = await Promise.all(r.migration_tasks.map((t) => call<Stats>('GET', `/v2/{project_id}/migration-task/${t.task_id}/stats`).catch(() => null)));
        if (!live) return;
        const next: Record<string, Stats> = {};
        r.migration_tasks.forEach((t, i) => {
          if (all[i]) next[t.task_id] = all[i]!;
        });
        setStats(next);
      })
      .catch((e) => live && setMessage({ kind: 'error', text: e instanceof ApiError ? e.message : String(e) }));
    const timer = setTimeout(() => setTick((n) => n + 1), 3000);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [offset, applied, tick]);

  const toggle = (id: string): void => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const allChecked = rows.length > 0 && rows.every((r) => selected.has(r.task_id));

  const runBatch = async (op: Batch): Promise<void> => {
    setConfirm(null);
    const ids = [...selected];
    try {
      if (op === 'delete') {
        const r = await call<{ task_id_list: string[] }>('DELETE', '/v2/{project_id}/migration-tasks/delete', { task_id_list: ids });
        setMessage({ kind: 'ok', text: `Deleted ${r.task_id_list.length} task(s).` });
      } else {
        const path = op === 'stop' ? '/v2/{project_id}/migration-task/batch-stop' : '/v2/{project_id}/migration-tasks/batch-restart';
        const r = await call<{ migration_tasks: { task_id: string; result: string; error_msg: string }[] }>('POST', path, { migration_tasks: ids });
        const failed = r.migration_tasks.filter((t) => t.result !== 'success');
        setMessage(
          failed.length === 0
            ? { kind: 'ok', text: `${op === 'stop' ? 'Stopping' : 'Restarted'} ${ids.length} task(s).` }
            : { kind: 'error', text: `${failed.length} of ${ids.length} refused: ${failed.map((f) => f.error_msg).join('; ')}` },
        );
      }
      setSelected(new Set());
      setTick((n) => n + 1);
    } catch (e) {
      setMessage({ kind: 'error', text: e instanceof ApiError ? e.message : String(e) });
    }
  };

  return (
    <section aria-labelledby="tasks-title">
      <div class="row spread">
        <h1 id="tasks-title">Migration tasks</h1>
        <a class="button" href="#/new">
          New task
        </a>
      </div>
      <form
        class="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setApplied(filter);
        }}
      >
        <label for="filter">Filter by name</label>
        <input id="filter" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} maxLength={64} />
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <div class="row" role="toolbar" aria-label="Selected tasks">
        <span class="muted">{selected.size} selected</span>
        <button type="button" class="secondary" disabled={selected.size === 0} onClick={() => setConfirm('stop')}>
          Stop
        </button>
        <button type="button" class="secondary" disabled={selected.size === 0} onClick={() => setConfirm('restart')}>
          Restart
        </button>
        <button type="button" class="danger" disabled={selected.size === 0} onClick={() => setConfirm('delete')}>
          Delete
        </button>
      </div>
      {message && (
        <p class={message.kind === 'ok' ? 'notice' : 'error'} role={message.kind === 'ok' ? 'status' : 'alert'}>
          {message.text}
        </p>
      )}
      <div class="scroll">
        <table>
          <caption class="visually-hidden">Tasks of the project, newest first</caption>
          <thead>
            <tr>
              <th scope="col">
                <input type="checkbox" aria-label="Select all tasks on this page" checked={allChecked} onChange={() => setSelected(allChecked ? new Set() : new Set(rows.map((r) => r.task_id)))} />
              </th>
              <th scope="col">Name</th>
              <th scope="col">Source → target</th>
              <th scope="col">Method</th>
              <th scope="col">Status</th>
              <th scope="col">Phase</th>
              <th scope="col">Progress</th>
              <th scope="col">Lag</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && (
              <tr>
                <td colSpan={9} class="muted">
                  No tasks{applied ? ` whose name contains “${applied}”` : ''}.
                </td>
              </tr>
            )}
            {rows.map((t) => {
              const s = stats[t.task_id];
              return (
                <tr key={t.task_id}>
                  <td>
                    <input type="checkbox" aria-label={`Select ${t.task_name}`} checked={selected.has(t.task_id)} onChange={() => toggle(t.task_id)} />
                  </td>
                  <td>
                    <a href={`#/tasks/${encodeURIComponent(t.task_id)}`}>{t.task_name}</a>
                  </td>
                  <td class="addr">
                    {t.migration_type === 'backupfile_import' ? 'backup files' : t.data_source || '–'} → {t.target_instance_addrs || '–'}
                  </td>
                  <td>{t.migration_method === 'incremental_migration' ? 'incremental' : t.migration_method === 'full_amount_migration' ? 'full' : '–'}</td>
                  <td>
                    <StatusBadge status={t.status} />
                  </td>
                  <td>{phaseOf(t.status)}</td>
                  <td>{s ? `${s.full_migration_progress} %` : '–'}</td>
                  <td>{s && t.status === 'INCRMIGEATING' ? fmtBytes(Number(s.offset)) : '–'}</td>
                  <td>{fmtTime(t.created_at)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <nav class="row" aria-label="Pages">
        <button type="button" class="secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Previous
        </button>
        <span class="muted">
          {count === 0 ? 0 : offset + 1}–{Math.min(count, offset + PAGE)} of {count}
        </span>
        <button type="button" class="secondary" disabled={offset + PAGE >= count} onClick={() => setOffset(offset + PAGE)}>
          Next
        </button>
      </nav>
      {confirm && (
        <Confirm
          message={`${confirm === 'delete' ? 'Delete' : confirm === 'stop' ? 'Stop' : 'Restart'} ${selected.size} task(s)?${confirm === 'delete' ? ' A migrating task is stopped first; this cannot be undone.' : ''}`}
          confirmLabel={confirm === 'delete' ? 'Delete' : confirm === 'stop' ? 'Stop' : 'Restart'}
          onConfirm={() => void runBatch(confirm)}
          onCancel={() => setConfirm(null)}
        />
      )}
    </section>
  );
}
