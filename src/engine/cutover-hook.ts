import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { addressPolicy, checkUrl, policyLookup, urlPort } from '../common/address-policy.js';

/**
 * The switch hook of a cutover: what moves the clients from one side to the other (a DNS
 * record, a proxy's backend, a service registry). Ferry cannot know how clients find their
 * Redis, so it calls this at the one moment when the switch is safe: writes paused on the live
 * side, everything applied on the other. The contract for hook writers is in the README
 * ("Cutover: exchange and rollback").
 */
export type SwitchHook =
  | { command: string; args?: string[]; timeoutMs?: number }
  | { url: string; timeoutMs?: number };

export type SwitchAction = 'exchange' | 'rollback';

/** What the hook is told, as environment variables (a command) or JSON fields (a URL). */
export interface HookContext {
  action: SwitchAction;
  taskId: string;
  /** Where clients are now, and where they must go (`host:port,...`). */
  fromAddrs: string;
  toAddrs: string;
  /** DCS's ExchangeInstanceIp fields, passed on as given. */
  exchangedIp: string[];
  isExchangeDomain: boolean;
}

export interface HookResult {
  /** The hook says the clients have moved (exit code 0, or a 2xx answer). */
  ok: boolean;
  timedOut: boolean;
  /** One line: the exit code or signal, the HTTP status, or why it could not run. */
  detail: string;
  /** What it printed or answered (capped). */
  output: string;
  durationMs: number;
}

export const DEFAULT_HOOK_TIMEOUT_MS = 10_000;
const OUTPUT_CAP = 8 * 1024;

/** A short description for logs: the command or the URL without credentials or query. */
export function describeHook(hook: SwitchHook): string {
  if ('command' in hook) return `command ${hook.command}`;
  try {
    const u = new URL(hook.url);
    return `url ${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'url (invalid)';
  }
}

export async function runSwitchHook(hook: SwitchHook, ctx: HookContext): Promise<HookResult> {
  return 'command' in hook ? runCommand(hook, ctx) : postUrl(hook, ctx);
}

function capped(text: string): string {
  return text.length > OUTPUT_CAP ? `${text.slice(0, OUTPUT_CAP)}... (${text.length - OUTPUT_CAP} more characters)` : text;
}

/**
 * Runs the command without a shell, in a process group of its own (a timeout kills the group:
 * nothing it started keeps moving clients after Ferry has given up on it). Its environment is
 * a few basics and the FERRY_* fields, never the service's own (which may hold credentials).
 */
function runCommand(hook: Extract<SwitchHook, { command: string }>, ctx: HookContext): Promise<HookResult> {
  const started = Date.now();
  const timeoutMs = hook.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'TZ']) if (process.env[name] !== undefined) env[name] = process.env[name];
  Object.assign(env, {
    FERRY_ACTION: ctx.action,
    FERRY_TASK_ID: ctx.taskId,
    FERRY_FROM_ADDRS: ctx.fromAddrs,
    FERRY_TO_ADDRS: ctx.toAddrs,
    FERRY_EXCHANGED_IP: ctx.exchangedIp.join(','),
    FERRY_IS_EXCHANGE_DOMAIN: ctx.isExchangeDomain ? 'true' : 'false',
  });
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    let settled = false;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok, timedOut, detail, output: capped(output), durationMs: Date.now() - started });
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(hook.command, hook.args ?? [], { shell: false, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ ok: false, timedOut: false, detail: `could not start: ${(e as Error).message}`, output: '', durationMs: Date.now() - started });
      return;
    }
    const take = (d: Buffer): void => {
      if (output.length <= OUTPUT_CAP) output += d.toString('utf8');
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('error', (e) => finish(false, `could not start: ${e.message}`));
    child.on('close', (code, signal) => {
      if (timedOut) finish(false, `timed out after ${timeoutMs} ms (killed)`);
      else if (code === 0) finish(true, 'exit code 0');
      else finish(false, signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

/**
 * POSTs the context as JSON. The address is checked against the service's address policy, and
 * the socket resolves through the same check (no second DNS answer sneaks past it). Redirects
 * are not followed.
 */
async function postUrl(hook: Extract<SwitchHook, { url: string }>, ctx: HookContext): Promise<HookResult> {
  const started = Date.now();
  const timeoutMs = hook.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  const fail = (detail: string): HookResult => ({ ok: false, timedOut: false, detail, output: '', durationMs: Date.now() - started });
  let url: URL;
  try {
    url = new URL(hook.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(`not an http(s) URL: ${url.protocol}`);
    await checkUrl(addressPolicy(), hook.url);
  } catch (e) {
    return fail((e as Error).message.replace(/^object store/, 'hook'));
  }
  const body = JSON.stringify({
    action: ctx.action,
    task_id: ctx.taskId,
    from_addrs: ctx.fromAddrs,
    to_addrs: ctx.toAddrs,
    exchanged_ip: ctx.exchangedIp,
    is_exchange_domain: ctx.isExchangeDomain,
  });
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<HookResult, 'durationMs'>): void => {
      if (settled) return;
      settled = true;
      resolve({ ...r, durationMs: Date.now() - started });
    };
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        lookup: policyLookup(addressPolicy(), urlPort(hook.url)),
        timeout: timeoutMs,
      },
      (res) => {
        let output = '';
        res.on('data', (d: Buffer) => {
          if (output.length <= OUTPUT_CAP) output += d.toString('utf8');
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          finish({ ok: status >= 200 && status < 300, timedOut: false, detail: `HTTP ${status}`, output: capped(output) });
        });
        res.on('error', (e) => finish({ ok: false, timedOut: false, detail: `response failed: ${e.message}`, output: capped(output) }));
      },
    );
    const deadline = setTimeout(() => {
      finish({ ok: false, timedOut: true, detail: `timed out after ${timeoutMs} ms`, output: '' });
      req.destroy();
    }, timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => {
      finish({ ok: false, timedOut: true, detail: `timed out after ${timeoutMs} ms`, output: '' });
      req.destroy();
    });
    req.on('error', (e) => finish({ ok: false, timedOut: false, detail: `request failed: ${e.message}`, output: '' }));
    req.end(body);
  });
}
