/**
 * The web console's server side: its sign-in (an AK/SK or a token exchanged for a short-lived
 * session cookie, so the browser never keeps the SK) and its built assets under /console/.
 *
 * The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
 * it) and Path=/ (the console calls the API's /v2 paths); a mutating call made with it must
 * also carry `X-Ferry-Console: 1`, a header no cross-site form can set. Sessions live in the
 * service's memory: a restart signs everyone out.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CredentialRegistry } from './auth/credentials.js';
import { Errors } from './errors.js';

export const SESSION_COOKIE = 'ferry_session';
export const CONSOLE_HEADER = 'x-ferry-console';
const DEFAULT_TTL_MS = 60 * 60 * 1000;
const MAX_SESSIONS = 10_000;

export interface ConsoleSession {
  projectId: string;
  /** `ak:<AK>` or `token:<hash prefix>`, as the API's actor. */
  actor: string;
  expiresAt: number;
}

/** Sessions by the SHA-256 of their cookie value (a leaked memory dump holds no usable cookie). */
export class ConsoleSessions {
  private readonly byHash = new Map<string, ConsoleSession>();

  constructor(readonly ttlMs: number = DEFAULT_TTL_MS) {}

  create(projectId: string, actor: string, now = Date.now()): string {
    this.sweep(now);
    // Oldest first in a Map: past the cap, the oldest session goes.
    while (this.byHash.size >= MAX_SESSIONS) this.byHash.delete(this.byHash.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.byHash.set(hash(id), { projectId, actor, expiresAt: now + this.ttlMs });
    return id;
  }

  get(id: string, now = Date.now()): ConsoleSession | undefined {
    const key = hash(id);
    const s = this.byHash.get(key);
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.byHash.delete(key);
      return undefined;
    }
    return s;
  }

  delete(id: string): void {
    this.byHash.delete(hash(id));
  }

  private sweep(now: number): void {
    for (const [k, s] of this.byHash) if (s.expiresAt <= now) this.byHash.delete(k);
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The value of one cookie of the request's Cookie header. */
export function cookieOf(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function equalSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a.length === b.length;
}

/** Where the built console is: web/dist next to src/ and dist/. */
export function defaultConsoleDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/dist');
}

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export async function registerConsole(app: FastifyInstance, opts: { sessions: ConsoleSessions; credentials: CredentialRegistry; consoleDir?: string | null }): Promise<void> {
  const { sessions, credentials } = opts;

  const setCookie = (reply: FastifyReply, value: string, maxAgeS: number): void => {
    void reply.header('Set-Cookie', `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`);
  };

  // Sign in: {ak, sk} or {token}. One answer for every wrong credential.
  app.post(
    '/console/api/session',
    {
      config: { public: true },
      bodyLimit: 8 * 1024,
      schema: {
        hide: true,
        operationId: 'ConsoleSignIn',
        body: {
          type: 'object',
          properties: { ak: { type: 'string', maxLength: 128 }, sk: { type: 'string', maxLength: 1024 }, token: { type: 'string', maxLength: 4096 } },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { ak?: string; sk?: string; token?: string };
      let projectId: string | undefined;
      let actor = '';
      if (b.token) {
        projectId = credentials.projectOfToken(b.token);
        actor = `token:${hash(b.token).slice(0, 8)}`;
      } else if (b.ak && b.sk) {
        const secret = credentials.secretFor(b.ak);
        // Compared even for an unknown AK, so timing does not tell which AKs exist.
        const ok = equalSecret(secret ?? 'no such access key', b.sk) && secret !== undefined;
        if (ok) projectId = credentials.projectOfAk(b.ak);
        actor = `ak:${b.ak}`;
      } else {
        throw Errors.invalidParameter('ak', 'Give ak and sk, or token.');
      }
      if (projectId === undefined) throw Errors.unauthenticated('the access key, secret key or token is not valid');
      const id = sessions.create(projectId, actor);
      setCookie(reply, id, Math.floor(sessions.ttlMs / 1000));
      // Audited in the project signed in to.
      req.actor = actor;
      req.projectId = projectId;
      return { project_id: projectId, actor, expires_in: Math.floor(sessions.ttlMs / 1000) };
    },
  );

  // Who is signed in (the console's first call): APIGW.0301 without a live session.
  app.get('/console/api/session', { config: { public: true }, schema: { hide: true } }, async (req) => {
    const id = cookieOf(req, SESSION_COOKIE);
    const s = id === undefined ? undefined : sessions.get(id);
    if (!s) throw Errors.unauthenticated('not signed in to the console');
    return { project_id: s.projectId, actor: s.actor, expires_in: Math.max(0, Math.floor((s.expiresAt - Date.now()) / 1000)) };
  });

  app.delete('/console/api/session', { config: { public: true }, schema: { hide: true, operationId: 'ConsoleSignOut' } }, async (req, reply) => {
    const id = cookieOf(req, SESSION_COOKIE);
    const s = id === undefined ? undefined : sessions.get(id);
    if (s) {
      req.projectId = s.projectId;
      req.actor = `console:${s.actor}`;
    }
    if (id !== undefined) sessions.delete(id);
    setCookie(reply, '', 0);
    return {};
  });

  const dir = opts.consoleDir === undefined ? defaultConsoleDir() : opts.consoleDir;
  if (dir === null || !existsSync(path.join(dir, 'index.html'))) {
    app.get('/console/', { config: { public: true }, schema: { hide: true } }, async (_req, reply) =>
      reply.status(503).type('text/plain').send('The console is not built: run `npm run build:console`.\n'),
    );
    return;
  }
  await app.register(async (scope) => {
    // The assets need no credential (the sign-in page is one of them).
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), public: true };
      route.schema = { ...(route.schema ?? {}), hide: true };
    });
    scope.addHook('onSend', async (_req, reply, payload) => {
      reply.header('Content-Security-Policy', CSP);
      reply.header('X-Content-Type-Options', 'nosniff');
      reply.header('Referrer-Policy', 'no-referrer');
      return payload;
    });
    await scope.register(fastifyStatic, { root: dir, prefix: '/console/', index: ['index.html'] });
    // The router ignores trailing slashes, so /console/ is /console, which the wildcard misses.
    scope.get('/console', (_req, reply) => reply.sendFile('index.html'));
  });
}
