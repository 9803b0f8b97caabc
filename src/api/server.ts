import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TaskManager } from '../tasks/manager.js';
import type { SecretBox } from '../tasks/secrets.js';
import type { TaskStore } from '../tasks/store.js';
import { verifySignature } from './auth/signature.js';
import type { CredentialRegistry } from './auth/credentials.js';
import { ApiError, Errors } from './errors.js';
import type { InstanceRegistry } from './instances.js';
import { openApiDocument } from './openapi.js';
import { registerRoutes } from './routes.js';

export interface ApiDependencies {
  store: TaskStore;
  manager: TaskManager;
  secrets: SecretBox;
  credentials: CredentialRegistry;
  instances: InstanceRegistry;
  logger: Logger;
  /** Largest accepted request body (bytes). */
  bodyLimit?: number;
}

/** Bodies past this are cut off by Fastify itself (connection closed); below it we answer 413. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

declare module 'fastify' {
  interface FastifyRequest {
    /** The project the caller's credential belongs to (set by authentication). */
    projectId: string;
  }
}

/**
 * The HTTP API: DCS v2 data-migration paths under /v2/{project_id}, authenticated with AK/SK
 * signatures or X-Auth-Token, every error in DCS's shape, every response with X-Request-Id.
 * The body is kept raw (a Buffer) because the signature covers the exact bytes received.
 */
export async function buildServer(deps: ApiDependencies): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? 1024 * 1024;
  const app = Fastify({
    logger: false,
    // Fastify's own limit only cuts off what is absurd; the parser below enforces `bodyLimit`
    // after reading (and discarding) the excess, so the client gets the 413 instead of a reset.
    bodyLimit: DRAIN_LIMIT,
    genReqId: () => randomUUID(),
    // Trailing slashes and doubled slashes are the same route, as on the real gateway.
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 200 },
  });
  app.decorateRequest('projectId', '');

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => {
    const chunks: Buffer[] = [];
    let size = 0;
    payload.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= bodyLimit) chunks.push(chunk);
    });
    payload.on('end', () => (size > bodyLimit ? done(Errors.tooLarge(), undefined) : done(null, Buffer.concat(chunks, size))));
    payload.on('error', (e: Error) => done(e, undefined));
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-Request-Id', req.id);
  });

  app.addHook('preHandler', async (req) => {
    // Unknown paths get DCS.4001 from the not-found handler, whoever asks.
    if (req.routeOptions.url === undefined) return;
    if ((req.routeOptions.config as { public?: boolean } | undefined)?.public) return;
    authenticate(req, deps.credentials);
    const pathProject = (req.params as { project_id?: string }).project_id;
    if (pathProject !== undefined && pathProject !== req.projectId) throw Errors.wrongProject();
  });

  app.addHook('onResponse', async (req, reply) => {
    deps.logger.info({ requestId: req.id, method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((error, req, reply) => {
    let apiError: ApiError;
    if (error instanceof ApiError) apiError = error;
    else if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') apiError = Errors.tooLarge();
    else if ((error as { statusCode?: number }).statusCode === 400) apiError = Errors.invalidJson();
    else {
      deps.logger.error({ requestId: req.id, err: (error as Error).message }, 'unexpected error in a request');
      apiError = Errors.internal();
    }
    void reply.status(apiError.status).type('application/json').send(apiError.body());
  });

  app.setNotFoundHandler((_req, reply) => {
    const e = Errors.unknownPath();
    void reply.status(e.status).type('application/json').send(e.body());
  });

  app.get('/openapi.json', { config: { public: true } }, async () => openApiDocument());

  registerRoutes(app, deps);
  return app;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** AK/SK signature or X-Auth-Token; sets req.projectId or throws APIGW.0301. */
function authenticate(req: FastifyRequest, credentials: CredentialRegistry): void {
  const token = header(req, 'x-auth-token');
  if (token !== undefined) {
    const project = credentials.projectOfToken(token);
    if (project === undefined) throw Errors.unauthenticated('the token is not valid');
    req.projectId = project;
    return;
  }
  if (header(req, 'authorization') === undefined) throw Errors.unauthenticated('no Authorization (AK/SK) or X-Auth-Token header');
  const url = req.raw.url ?? '/';
  const q = url.indexOf('?');
  const result = verifySignature(
    {
      method: req.method,
      rawPath: q < 0 ? url : url.slice(0, q),
      rawQuery: q < 0 ? '' : url.slice(q + 1),
      headers: req.headers,
      body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
    },
    (ak) => credentials.secretFor(ak),
  );
  if (!result.ok) throw Errors.unauthenticated(`verify aksk signature fail: ${result.reason}`);
  const project = credentials.projectOfAk(result.accessKey);
  if (project === undefined) throw Errors.unauthenticated('unknown access key');
  req.projectId = project;
}
