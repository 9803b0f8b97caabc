import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AddressPolicy } from '../common/address-policy.js';
import { ANY_POLICY } from '../common/address-policy.js';
import type { TaskManager } from '../tasks/manager.js';
import type { SecretBox } from '../tasks/secrets.js';
import type { TaskStore } from '../tasks/store.js';
import { recordAudit } from './audit.js';
import { CONSOLE_HEADER, ConsoleSessions, cookieOf, registerConsole, SESSION_COOKIE } from './console.js';
import { ServiceMetrics } from './metrics.js';
import { ProgressHistory, registerProgressRoute } from './progress.js';
import { ReplayCache } from './auth/replay-cache.js';
import { DEFAULT_MAX_SKEW_MS, parseSdkDate, verifySignature } from './auth/signature.js';
import type { CredentialRegistry } from './auth/credentials.js';
import { ApiError, Errors } from './errors.js';
import type { InstanceRegistry } from './instances.js';
import { registerRoutes } from './routes.js';
import { errorSchema } from './schemas.js';
import { dcsValidationError, validatorCompiler } from './validation.js';

export interface ApiDependencies {
  store: TaskStore;
  manager: TaskManager;
  secrets: SecretBox;
  credentials: CredentialRegistry;
  instances: InstanceRegistry;
  logger: Logger;
  /** Largest accepted request body (bytes) of a route that does not set its own. */
  bodyLimit?: number;
  /** Which addresses tasks may name (checked here early, and by the workers at every connection). */
  addressPolicy?: AddressPolicy;
  /** Requests per access key (or client IP before authentication) per window. */
  rateLimit?: { max: number; timeWindowMs: number };
  /** See VerifyOptions.requireSignedHost. */
  requireSignedHost?: boolean;
  /** Commands a task may name as its switch hook (service config cutover.allowedHookCommands). */
  allowedHookCommands?: readonly string[];
  /** `Authorization: Bearer <metricsToken>` is accepted on GET /metrics (every project's tasks). */
  metricsToken?: string | null;
  /** The built console (default web/dist); null: no console. */
  consoleDir?: string | null;
  /** Console sessions (default: a fresh in-memory store). */
  sessions?: ConsoleSessions;
}

/** Bodies past this are cut off at once; below it the excess is read and discarded, then 413. */
const DRAIN_LIMIT = 64 * 1024 * 1024;
const DEFAULT_BODY_LIMIT = 64 * 1024;

/** A body that is not JSON, or not a JSON object: answered DCS.4005 once the caller is known. */
const INVALID_BODY = Symbol('invalid body');

declare module 'fastify' {
  interface FastifyRequest {
    /** The project the caller's credential belongs to (set by authentication). */
    projectId: string;
    /** Who called, for the audit log: `ak:<AK>`, `token:<hash prefix>` or `unauthenticated`. */
    actor: string;
    /** The rate limit's key: the access key, the token's hash, or the client IP. */
    rateKey: string;
    /** The exact bytes received (the signature covers them). */
    rawBody: Buffer | undefined;
    /** Authentication failure, thrown after the rate limiter has counted the request. */
    authFailure: ApiError | null;
    /** The DCS error code the request was answered with (audit log). */
    errorCode: string;
    /** Tasks the request acted on (audit log). */
    auditTaskIds: string[];
    /** Authenticated with the metrics token: sees every project's tasks on /metrics only. */
    allProjects: boolean;
  }
  interface FastifyContextConfig {
    /** Also accepts `Authorization: Bearer <metricsToken>` (GET /metrics). */
    metricsBearer?: boolean;
    /** No authentication (the OpenAPI document). */
    public?: boolean;
    /** An empty body stands for `{}` (optional bodies). */
    optionalBody?: boolean;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sendError(reply: FastifyReply, e: ApiError): void {
  reply.request.errorCode = e.code;
  void reply.status(e.status).header('X-Request-Id', reply.request.id).type('application/json').send(e.body());
}

/**
 * The HTTP API: DCS v2 data-migration paths under /v2/{project_id}, authenticated with AK/SK
 * signatures or X-Auth-Token, validated by the route schemas, every answer (Fastify's own errors
 * included) in DCS's error shape and with X-Request-Id.
 *
 * A request's way: onRequest (X-Request-Id) → body read as raw bytes and parsed (the signature
 * covers the bytes) → preValidation: authentication, then the rate limiter (per access key; per
 * IP before authentication, so failed attempts count too), then the refusals (authentication,
 * replay, wrong project, empty or non-JSON body) → schema validation → handler → onResponse:
 * the access log and, for mutating calls, the audit log.
 */
export async function buildServer(deps: ApiDependencies): Promise<FastifyInstance> {
  const policy = deps.addressPolicy ?? ANY_POLICY;
  const replays = new ReplayCache(DEFAULT_MAX_SKEW_MS);
  const app = Fastify({
    logger: false,
    // Node would answer a request without Host with a bare 400 of its own; let it reach the
    // API, which answers in DCS's shape (and refuses it: the signature must cover Host).
    http: { requireHostHeader: false },
    bodyLimit: DRAIN_LIMIT,
    genReqId: () => randomUUID(),
    // Trailing slashes and doubled slashes are the same route, as on the real gateway.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 200 },
    // Errors Fastify answers before any hook runs (the router's): the DCS shape too.
    frameworkErrors: (error, _req, reply) => {
      const code = (error as FastifyError).code;
      sendError(reply, code === 'FST_ERR_MAX_PARAM_LENGTH' ? Errors.uriTooLong() : code === 'FST_ERR_BAD_URL' ? Errors.badUrl() : Errors.badRequest((error as Error).message));
    },
    // Requests Node's HTTP parser refuses (malformed lines, oversized headers).
    clientErrorHandler: (error: NodeJS.ErrnoException, socket: Socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const body = JSON.stringify(new ApiError(status, 'APIGW.0201', 'API request error: the request is not valid HTTP.').body());
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
            `Content-Type: application/json\r\nX-Request-Id: ${randomUUID()}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  });
  app.decorateRequest('projectId', '');
  app.decorateRequest('actor', 'unauthenticated');
  app.decorateRequest('rateKey', '');
  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('authFailure', null);
  app.decorateRequest('errorCode', '');
  app.decorateRequest('auditTaskIds', null as unknown as string[]);
  app.decorateRequest('allProjects', false);
  const sessions = deps.sessions ?? new ConsoleSessions();

  app.setValidatorCompiler(validatorCompiler);
  // Response schemas are documentation (OpenAPI); answers are serialised as they are built.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addSchema(errorSchema);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Ferry migration service',
        version: '0.1.0',
        description:
          "Compatible with Huawei Cloud DCS v2's data-migration API: same paths, bodies, statuses, errors and AK/SK signing (SDK-HMAC-SHA256) or X-Auth-Token. Ferry's additions carry x-ferry-extension: true.",
      },
      components: {
        securitySchemes: {
          aksk: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'SDK-HMAC-SHA256 Access=AK, SignedHeaders=...;host;...;x-sdk-date, Signature=... (host and x-sdk-date must be signed)' },
          token: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' },
        },
      },
      security: [{ aksk: [] }, { token: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String((json as { $id?: string }).$id ?? `def-${i}`) },
  });

  const rateLimit = deps.rateLimit ?? { max: 600, timeWindowMs: 60_000 };
  await app.register(fastifyRateLimit, {
    global: false,
    max: rateLimit.max,
    timeWindow: rateLimit.timeWindowMs,
    keyGenerator: (req) => req.rateKey || `ip:${req.ip}`,
    errorResponseBuilder: (_req, ctx) => Errors.tooManyRequests(ctx.after),
  });

  // Bodies: the raw bytes are kept for the signature; the JSON is parsed here so the route
  // schemas can validate it. Nothing is refused here, so that authentication answers first.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (req, payload, done) => {
    const limit = req.routeOptions.bodyLimit ?? DEFAULT_BODY_LIMIT;
    const chunks: Buffer[] = [];
    let size = 0;
    payload.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > DRAIN_LIMIT) payload.destroy(Errors.tooLarge(limit));
    });
    payload.on('end', () => {
      if (size > limit) return done(Errors.tooLarge(limit), undefined);
      const raw = Buffer.concat(chunks, size);
      req.rawBody = raw;
      done(null, parseBody(raw));
    });
    payload.on('error', (e: Error) => done(e instanceof ApiError ? e : Errors.badRequest('the body could not be read'), undefined));
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-Request-Id', req.id);
    req.auditTaskIds = [];
  });

  // 1. Who is calling (not thrown yet: the rate limiter counts failed attempts first).
  app.addHook('preValidation', async (req) => {
    req.rateKey = `ip:${req.ip}`;
    if (req.routeOptions.url === undefined || req.routeOptions.config.public) return;
    try {
      authenticate(req, deps, replays, sessions);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      req.authFailure = e;
    }
  });
  // 2. The rate limit, per access key.
  app.addHook('preValidation', app.rateLimit());
  // 3. The refusals, then the body's presence and shape.
  app.addHook('preValidation', async (req) => {
    if (req.authFailure) throw req.authFailure;
    if (req.routeOptions.url === undefined) return;
    const pathProject = (req.params as { project_id?: string }).project_id;
    if (pathProject !== undefined && req.projectId !== '' && pathProject !== req.projectId) throw Errors.wrongProject();
    if (!req.routeOptions.schema?.body) return;
    if ((req.body as unknown) === INVALID_BODY) throw Errors.invalidJson();
    if (req.body === undefined || req.body === null) {
      if (!req.routeOptions.config.optionalBody) throw Errors.emptyBody();
      req.body = {};
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    deps.logger.info({ requestId: req.id, method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    if (MUTATING.has(req.method) && req.routeOptions.url !== undefined) await recordAudit(deps.store, deps.logger, req, reply.statusCode);
  });

  app.setErrorHandler((error, req, reply) => {
    sendError(reply, toApiError(error, req, deps.logger));
  });

  app.setNotFoundHandler((_req, reply) => sendError(reply, Errors.unknownPath()));

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  registerRoutes(app, { ...deps, addressPolicy: policy });

  // Prometheus metrics: the API's own authentication (the caller's project), or the metrics token (all).
  const metrics = new ServiceMetrics(deps.store, deps.manager);
  app.get('/metrics', { config: { metricsBearer: true }, schema: { hide: true } }, async (req, reply) => {
    const text = await metrics.render(req.allProjects ? null : req.projectId);
    return reply.type(metrics.contentType).send(text);
  });
  const history = new ProgressHistory(deps.manager);
  history.start();
  app.addHook('onClose', async () => history.stop());
  registerProgressRoute(app, { store: deps.store, manager: deps.manager, history });
  await registerConsole(app, { sessions, credentials: deps.credentials, consoleDir: deps.consoleDir });
  return app;
}

function parseBody(raw: Buffer): unknown {
  const text = raw.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : INVALID_BODY;
  } catch {
    return INVALID_BODY;
  }
}

/** Every error, ours or Fastify's, in DCS's shape; anything unexpected is DCS.5000 without details. */
function toApiError(error: unknown, req: FastifyRequest, logger: Logger): ApiError {
  if (error instanceof ApiError) return error;
  const e = error as FastifyError & { validation?: unknown; validationContext?: string };
  if (Array.isArray(e.validation)) return dcsValidationError(e.validation, e.validationContext ?? 'body');
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return Errors.tooLarge();
  if (e.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return Errors.invalidJson();
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 404) return Errors.unknownPath();
  if (status === 413) return Errors.tooLarge();
  if (status >= 400 && status < 500) return new ApiError(status, 'APIGW.0201', `API request error: ${e.code ?? 'the request was refused'}.`);
  logger.error({ requestId: req.id, err: (error as Error)?.message }, 'unexpected error in a request');
  return Errors.internal();
}

/** AK/SK signature or X-Auth-Token; sets projectId, actor and rateKey, or throws APIGW.0301. */
function authenticate(req: FastifyRequest, deps: ApiDependencies, replays: ReplayCache, sessions: ConsoleSessions): void {
  const bearer = /^Bearer\s+(\S+)$/i.exec(header(req, 'authorization') ?? '')?.[1];
  if (bearer !== undefined && req.routeOptions.config.metricsBearer) {
    const wanted = deps.metricsToken;
    const given = createHash('sha256').update(bearer).digest();
    const ok = timingSafeEqual(given, createHash('sha256').update(wanted || 'no metrics token').digest()) && !!wanted;
    if (!ok) throw Errors.unauthenticated(wanted ? 'the metrics token is not valid' : 'no metricsToken is configured: sign the request (AK/SK) or use X-Auth-Token');
    req.allProjects = true;
    req.actor = 'metrics-token';
    req.rateKey = 'metrics-token';
    return;
  }
  const token = header(req, 'x-auth-token');
  if (token !== undefined) {
    const project = deps.credentials.projectOfToken(token);
    if (project === undefined) throw Errors.unauthenticated('the token is not valid');
    const id = createHash('sha256').update(token).digest('hex').slice(0, 8);
    req.projectId = project;
    req.actor = `token:${id}`;
    req.rateKey = `token:${id}`;
    return;
  }
  const sessionId = header(req, 'authorization') === undefined ? cookieOf(req, SESSION_COOKIE) : undefined;
  if (sessionId !== undefined && sessionId !== '') {
    // The console's session cookie (src/api/console.ts).
    const s = sessions.get(sessionId);
    if (!s) throw Errors.unauthenticated('the console session has expired or was signed out: sign in again');
    if (MUTATING.has(req.method) && header(req, CONSOLE_HEADER) !== '1') throw Errors.unauthenticated(`a change made with the console's session cookie needs the ${CONSOLE_HEADER} header`);
    req.projectId = s.projectId;
    req.actor = `console:${s.actor}`;
    req.rateKey = s.actor;
    return;
  }
  if (header(req, 'authorization') === undefined) throw Errors.unauthenticated('no Authorization (AK/SK) or X-Auth-Token header');
  const url = req.raw.url ?? '/';
  const q = url.indexOf('?');
  const result = verifySignature(
    { method: req.method, rawPath: q < 0 ? url : url.slice(0, q), rawQuery: q < 0 ? '' : url.slice(q + 1), headers: req.headers, body: req.rawBody ?? Buffer.alloc(0) },
    (ak) => deps.credentials.secretFor(ak),
    new Date(),
    DEFAULT_MAX_SKEW_MS,
    { requireSignedHost: deps.requireSignedHost ?? true },
  );
  if (!result.ok) {
    // The client hears one message for an unknown AK and a bad signature; the log tells which.
    if (result.detail) deps.logger.warn({ requestId: req.id, ip: req.ip, why: result.detail }, 'AK/SK authentication failed');
    throw Errors.unauthenticated(`verify aksk signature fail: ${result.reason}`);
  }
  const project = deps.credentials.projectOfAk(result.accessKey);
  if (project === undefined) throw Errors.unauthenticated('verify aksk signature fail: signature mismatch');
  req.projectId = project;
  req.actor = `ak:${result.accessKey}`;
  req.rateKey = `ak:${result.accessKey}`;
  if (MUTATING.has(req.method)) {
    // A signature is valid for ±15 minutes around its date: remembered that long, a second
    // copy of a state-changing request is refused.
    const signature = /Signature=([0-9a-fA-F]{64})/.exec(header(req, 'authorization') ?? '')?.[1]?.toLowerCase() ?? '';
    const signedAt = parseSdkDate((header(req, 'x-sdk-date') ?? '').trim())?.getTime() ?? Date.now();
    if (!replays.remember(`${result.accessKey}:${signature}`, signedAt)) {
      deps.logger.warn({ requestId: req.id, ip: req.ip, ak: result.accessKey }, 'replayed signed request refused');
      throw Errors.replayed();
    }
  }
}
