import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, type TaskDetail } from './api';

/**
 * Create and configure an online migration task: CreateOnlineMigrationTask, then
 * SetOnlineMigrationTask with the same fields (and Ferry's extensions). Nothing is checked
 * here that the API checks: its DCS error names the field, and the message goes next to it.
 */

type Errors = Record<string, string>;

/** The field's error: its own, or one about the object it belongs to (source_instance). */
function errorFor(errors: Errors, field: string): string | undefined {
  return errors[field];
}

function Field({ id, label, errors, hint, children }: { id: string; label: string; errors: Errors; hint?: string; children: ComponentChildren }) {
  const err = errorFor(errors, id);
  return (
    <div class={`field${err ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      {hint && (
        <small id={`${id}-hint`} class="muted">
          {hint}
        </small>
      )}
      {err && (
        <small id={`${id}-error`} class="error" role="alert">
          {err}
        </small>
      )}
    </div>
  );
}

/** aria attributes tying an input to its hint and error. */
function described(id: string, errors: Errors, hint = false): Record<string, string | boolean> {
  const ids = [hint ? `${id}-hint` : '', errors[id] ? `${id}-error` : ''].filter(Boolean).join(' ');
  return { id, name: id, 'aria-invalid': !!errors[id], ...(ids ? { 'aria-describedby': ids } : {}) };
}

interface EndpointState {
  kind: 'addrs' | 'id';
  addrs: string;
  id: string;
  password: string;
  tls: boolean;
  caFile: string;
  insecure: boolean;
  sentinelPassword: string;
}

const emptyEndpoint = (): EndpointState => ({ kind: 'addrs', addrs: '', id: '', password: '', tls: false, caFile: '', insecure: false, sentinelPassword: '' });

function endpointBody(e: EndpointState): Record<string, unknown> {
  const tls = !e.tls ? null : e.caFile || e.insecure ? { ca_file: e.caFile || null, insecure: e.insecure || null } : true;
  return {
    ...(e.kind === 'id' ? { id: e.id } : { addrs: e.addrs }),
    password: e.password === '' ? null : e.password,
    tls,
    sentinel_password: e.sentinelPassword === '' ? null : e.sentinelPassword,
  };
}

function EndpointFields({ side, value, onChange, errors }: { side: 'source' | 'target'; value: EndpointState; onChange: (v: EndpointState) => void; errors: Errors }) {
  const p = `${side}_instance`;
  const set = (patch: Partial<EndpointState>): void => onChange({ ...value, ...patch });
  const own = errors[p];
  return (
    <fieldset aria-describedby={own ? `${p}-error` : undefined}>
      <legend>{side === 'source' ? 'Source' : 'Target'}</legend>
      <div class="row" role="radiogroup" aria-label={`${side} given by`}>
        <label class="inline">
          <input type="radio" name={`${p}.kind`} checked={value.kind === 'addrs'} onChange={() => set({ kind: 'addrs' })} /> By addresses
        </label>
        <label class="inline">
          <input type="radio" name={`${p}.kind`} checked={value.kind === 'id'} onChange={() => set({ kind: 'id' })} /> By registered instance
        </label>
      </div>
      {value.kind === 'addrs' ? (
        <Field id={`${p}.addrs`} label="Addresses" errors={errors} hint="host:port[,host:port…] (cluster nodes, or a master and its replicas), or sentinel://host:port/master-name">
          <input {...described(`${p}.addrs`, errors, true)} value={value.addrs} onInput={(e) => set({ addrs: (e.target as HTMLInputElement).value })} autocomplete="off" spellcheck={false} />
        </Field>
      ) : (
        <Field id={`${p}.id`} label="Instance id" errors={errors} hint="An instance registered in the service's configuration">
          <input {...described(`${p}.id`, errors, true)} value={value.id} onInput={(e) => set({ id: (e.target as HTMLInputElement).value })} autocomplete="off" />
        </Field>
      )}
      <Field id={`${p}.password`} label="Password" errors={errors} hint="Never shown again; leave empty for none (or the registered instance's)">
        <input {...described(`${p}.password`, errors, true)} type="password" autocomplete="new-password" value={value.password} onInput={(e) => set({ password: (e.target as HTMLInputElement).value })} />
      </Field>
      <div class="row">
        <label class="inline">
          <input type="checkbox" checked={value.tls} onChange={(e) => set({ tls: (e.target as HTMLInputElement).checked })} /> TLS
        </label>
      </div>
      {value.tls && (
        <>
          <Field id={`${p}.tls.ca_file`} label="CA file on the service host" errors={errors}>
            <input {...described(`${p}.tls.ca_file`, errors)} value={value.caFile} onInput={(e) => set({ caFile: (e.target as HTMLInputElement).value })} />
          </Field>
          <label class="inline">
            <input type="checkbox" checked={value.insecure} onChange={(e) => set({ insecure: (e.target as HTMLInputElement).checked })} /> Skip certificate verification (insecure)
          </label>
        </>
      )}
      {value.kind === 'addrs' && /^sentinel:/i.test(value.addrs) && (
        <Field id={`${p}.sentinel_password`} label="Sentinel password" errors={errors}>
          <input {...described(`${p}.sentinel_password`, errors)} type="password" autocomplete="new-password" value={value.sentinelPassword} onInput={(e) => set({ sentinelPassword: (e.target as HTMLInputElement).value })} />
        </Field>
      )}
      {own && (
        <small id={`${p}-error`} class="error" role="alert">
          {own}
        </small>
      )}
    </fieldset>
  );
}

export function TaskForm({ taskId }: { taskId?: string }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [method, setMethod] = useState('incremental_migration');
  const [resume, setResume] = useState('auto');
  const [bandwidth, setBandwidth] = useState('');
  const [source, setSource] = useState(emptyEndpoint());
  const [target, setTarget] = useState(emptyEndpoint());
  const [sourceMode, setSourceMode] = useState('auto');
  const [writeErrorPolicy, setWriteErrorPolicy] = useState('fail');
  const [targetConflict, setTargetConflict] = useState('fail');
  const [dropFlush, setDropFlush] = useState(false);
  const [dbMap, setDbMap] = useState('');
  const [dbs, setDbs] = useState('');
  const [dbPrefix, setDbPrefix] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** A task created by an earlier submit whose configuration the API refused. */
  const [created, setCreated] = useState<string | undefined>(taskId);

  useEffect(() => {
    if (!taskId) return;
    call<TaskDetail>('GET', `/v2/{project_id}/migration-task/${encodeURIComponent(taskId)}`)
      .then((t) => {
        setName(t.task_name);
        setDescription(t.description);
      })
      .catch((e) => setGeneral(e instanceof ApiError ? e.message : String(e)));
  }, [taskId]);

  const fail = (e: unknown): void => {
    if (e instanceof ApiError && e.field) {
      setErrors({ [e.field]: e.reason });
      setGeneral(`${e.code}: ${e.message}`);
      // Focus the field the API named, so keyboard and screen-reader users land on it.
      setTimeout(() => (document.getElementById(e.field!) as HTMLElement | null)?.focus(), 0);
    } else setGeneral(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
  };

  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setBusy(true);
    setErrors({});
    setGeneral(null);
    let id = created;
    try {
      if (!id) {
        const r = await call<{ instance_id: string }>('POST', '/v2/{project_id}/migration/instance', { name, description: description || null });
        id = r.instance_id;
        setCreated(id);
      }
      const bw = bandwidth.trim();
      await call('POST', `/v2/{project_id}/migration/${encodeURIComponent(id)}/task`, {
        migration_method: method,
        resume_mode: resume,
        bandwidth_limit_mb: bw === '' ? null : /^\d+$/.test(bw) ? Number(bw) : bw,
        source_instance: endpointBody(source),
        target_instance: endpointBody(target),
        source_mode: sourceMode,
        write_error_policy: writeErrorPolicy,
        target_conflict: targetConflict,
        drop_flush: dropFlush,
        db_map: dbMap.trim() || null,
        dbs: dbs.trim() || null,
        db_prefix: dbPrefix || null,
      });
      location.hash = `#/tasks/${encodeURIComponent(id)}`;
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };

  const select = (id: string, label: string, value: string, set: (v: string) => void, options: [string, string][], hint?: string) => (
    <Field id={id} label={label} errors={errors} hint={hint}>
      <select {...described(id, errors, !!hint)} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
        {options.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </Field>
  );

  return (
    <section aria-labelledby="form-title">
      <h1 id="form-title">{taskId ? 'Configure task' : 'New migration task'}</h1>
      {created && !taskId && <p class="notice">Task created ({created}); fix the configuration and submit again.</p>}
      <form onSubmit={submit} novalidate aria-label="Migration task">
        <div class="grid">
          <fieldset>
            <legend>Task</legend>
            <Field id="name" label="Name" errors={errors}>
              <input {...described('name', errors)} value={name} disabled={!!created} onInput={(e) => setName((e.target as HTMLInputElement).value)} maxLength={200} />
            </Field>
            <Field id="description" label="Description" errors={errors}>
              <textarea {...described('description', errors)} value={description} disabled={!!created} onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)} rows={2} />
            </Field>
            {select('migration_method', 'Method', method, setMethod, [
              ['incremental_migration', 'Incremental (snapshot, then every later write)'],
              ['full_amount_migration', 'Full (the snapshot only)'],
            ])}
            {select('resume_mode', 'Resume mode', resume, setResume, [
              ['auto', 'auto: reconnect and resume'],
              ['manual', 'manual: fail on a lost link'],
            ])}
            <Field id="bandwidth_limit_mb" label="Bandwidth limit (MB/s)" errors={errors} hint="1–10240; empty for no limit">
              <input {...described('bandwidth_limit_mb', errors, true)} inputMode="numeric" value={bandwidth} onInput={(e) => setBandwidth((e.target as HTMLInputElement).value)} />
            </Field>
          </fieldset>
          <EndpointFields side="source" value={source} onChange={setSource} errors={errors} />
          <EndpointFields side="target" value={target} onChange={setTarget} errors={errors} />
          <fieldset>
            <legend>Ferry options</legend>
            {select('source_mode', 'Source mode', sourceMode, setSourceMode, [
              ['auto', 'auto (PSYNC, scan when refused)'],
              ['psync', 'psync'],
              ['scan', 'scan (SCAN + DUMP, keyspace notifications)'],
            ])}
            {select('target_conflict', 'Keys already on the target', targetConflict, setTargetConflict, [
              ['fail', 'fail the task'],
              ['replace', 'replace them'],
              ['purge-first', 'empty the target first'],
            ])}
            {select('write_error_policy', 'A write the target refuses', writeErrorPolicy, setWriteErrorPolicy, [
              ['fail', 'fail the task'],
              ['skip', 'log, count and skip it'],
            ])}
            <Field id="db_map" label="Database mapping" errors={errors} hint='Source db to target db: "0:1,2:3" (empty: each db to itself)'>
              <input {...described('db_map', errors, true)} value={dbMap} onInput={(e) => setDbMap((e.target as HTMLInputElement).value)} spellcheck={false} />
            </Field>
            <Field id="dbs" label="Only these source databases" errors={errors} hint='"0,1,5" (empty: all)'>
              <input {...described('dbs', errors, true)} value={dbs} onInput={(e) => setDbs((e.target as HTMLInputElement).value)} spellcheck={false} />
            </Field>
            <Field id="db_prefix" label="Key prefix per source database" errors={errors} hint='"1=db1:,2=db2:" (keeps databases apart on a cluster target)'>
              <input {...described('db_prefix', errors, true)} value={dbPrefix} onInput={(e) => setDbPrefix((e.target as HTMLInputElement).value)} spellcheck={false} />
            </Field>
            <label class="inline">
              <input type="checkbox" id="drop_flush" checked={dropFlush} onChange={(e) => setDropFlush((e.target as HTMLInputElement).checked)} /> Do not forward FLUSHALL / FLUSHDB
            </label>
          </fieldset>
        </div>
        {general && (
          <p class="error" role="alert" id="form-error">
            {general}
          </p>
        )}
        <div class="row">
          <button type="submit" disabled={busy}>
            {busy ? 'Starting…' : created ? 'Configure and start' : 'Create and start'}
          </button>
          <a href="#/tasks">Cancel</a>
        </div>
      </form>
    </section>
  );
}
