import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, setProject, whenSignedOut } from './api';
import { TaskForm } from './form';
import { TaskList } from './tasks';
import { TaskPage } from './task';
import './styles.css';

/** Hash routes: #/tasks, #/new, #/tasks/<id>, #/tasks/<id>/configure. */
function useRoute(): string {
  const [route, setRoute] = useState(location.hash.slice(1) || '/tasks');
  useEffect(() => {
    const on = (): void => setRoute(location.hash.slice(1) || '/tasks');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn({ onSignedIn }: { onSignedIn: (project: string) => void }) {
  const [useToken, setUseToken] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(null);
    try {
      const body = useToken ? { token: String(form.get('token') ?? '') } : { ak: String(form.get('ak') ?? ''), sk: String(form.get('sk') ?? '') };
      const r = await call<{ project_id: string }>('POST', '/console/api/session', body);
      // The form's fields are dropped with the page: the SK stays nowhere but in the server's check.
      (e.currentTarget as HTMLFormElement | null)?.reset();
      onSignedIn(r.project_id);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Ferry console</h1>
      <p class="muted">Sign in with an access key and secret key (or a token) of this service.</p>
      <form onSubmit={submit} aria-label="Sign in" novalidate>
        <fieldset>
          <legend>Credential</legend>
          <label class="inline">
            <input type="radio" name="kind" checked={!useToken} onChange={() => setUseToken(false)} /> Access key / secret key
          </label>
          <label class="inline">
            <input type="radio" name="kind" checked={useToken} onChange={() => setUseToken(true)} /> Token
          </label>
        </fieldset>
        {useToken ? (
          <div class="field">
            <label for="token">Token</label>
            <input id="token" name="token" type="password" autocomplete="off" required />
          </div>
        ) : (
          <>
            <div class="field">
              <label for="ak">Access key (AK)</label>
              <input id="ak" name="ak" autocomplete="username" required />
            </div>
            <div class="field">
              <label for="sk">Secret key (SK)</label>
              <input id="sk" name="sk" type="password" autocomplete="current-password" required />
            </div>
          </>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function App() {
  const [project, setProjectState] = useState<string | null | undefined>(undefined);
  const route = useRoute();
  useEffect(() => {
    whenSignedOut(() => setProjectState(null));
    call<{ project_id: string }>('GET', '/console/api/session')
      .then((s) => {
        setProject(s.project_id);
        setProjectState(s.project_id);
      })
      .catch(() => setProjectState(null));
  }, []);
  if (project === undefined) return <p class="muted">Loading…</p>;
  if (project === null)
    return (
      <SignIn
        onSignedIn={(p) => {
          setProject(p);
          setProjectState(p);
        }}
      />
    );
  const signOut = async (): Promise<void> => {
    await call('DELETE', '/console/api/session').catch(() => undefined);
    setProjectState(null);
  };
  let page;
  let m: RegExpExecArray | null;
  if (route === '/new') page = <TaskForm />;
  else if ((m = /^\/tasks\/([^/]+)\/configure$/.exec(route))) page = <TaskForm taskId={decodeURIComponent(m[1]!)} />;
  else if ((m = /^\/tasks\/([^/]+)$/.exec(route))) page = <TaskPage id={decodeURIComponent(m[1]!)} />;
  else page = <TaskList />;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/tasks">
          Ferry
        </a>
        <nav aria-label="Main">
          <a href="#/tasks" aria-current={route === '/tasks' ? 'page' : undefined}>
            Tasks
          </a>
          <a href="#/new" aria-current={route === '/new' ? 'page' : undefined}>
            New task
          </a>
        </nav>
        <span class="muted project" title="Project id">
          project {project}
        </span>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
