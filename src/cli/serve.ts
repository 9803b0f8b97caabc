import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { CredentialRegistry, loadOrCreateGeneratedCredential } from '../api/auth/credentials.js';
import { InstanceRegistry } from '../api/instances.js';
import { buildServer } from '../api/server.js';
import { loadServiceConfig } from '../config/service-config.js';
import { TaskManager } from '../tasks/manager.js';
import { SecretBox } from '../tasks/secrets.js';
import { SqliteTaskStore } from '../tasks/sqlite-store.js';
import { PgTaskStore, redactUrl } from '../tasks/pg-store.js';
import type { TaskStore } from '../tasks/store.js';
import { makeAddressPolicy, type AddressPolicySpec } from '../common/address-policy.js';
import type { Task } from '../tasks/model.js';

export interface ServeOptions {
  listen: string;
  dataDir: string;
  config?: string;
  logLevel?: string;
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new Error(`invalid --listen "${text}": expected HOST:PORT`);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

/** `host:port` of an http(s) URL (the object store's endpoint). */
function hostPortOf(url: string): string | null {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return null;
  }
}

/**
 * This node's id: from the config, else kept in `<dataDir>/node-id` (made once), so a node that
 * restarts takes its own leases back at once instead of waiting for them to expire.
 */
function nodeIdOf(configured: string | null, dataDir: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, 'node-id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9._-]{1,64}$/.test(id)) return id;
  }
  const id = `node-${randomBytes(4).toString('hex')}`;
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/** `ferry serve`: the migration service, until SIGINT/SIGTERM. */
export async function serveCommand(opts: ServeOptions): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const dataDir = path.resolve(opts.dataDir);
  // Everything the service (and its workers) creates is the owner's only: the database, the
  // key, spooled backups.
  process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // An existing data dir keeps whatever mode it had unless told: it holds the key to every
  // stored password.
  chmodSync(dataDir, 0o700);
  const logger = pino({ level: opts.logLevel ?? 'info', base: undefined });
  const config = loadServiceConfig(opts.config);

  let akSk = config.akSk;
  if (akSk.length === 0 && config.tokens.length === 0) {
    // Never an open API: without configured credentials, Ferry makes one and says so once.
    const { credential, created } = loadOrCreateGeneratedCredential(dataDir);
    akSk = [credential];
    if (created) {
      process.stdout.write(
        `No credentials configured: generated one (stored in ${path.join(dataDir, 'credentials.json')}).\n` +
          `  project id: ${credential.projectId}\n  AK: ${credential.ak}\n  SK: ${credential.sk}\n` +
          'This SK is shown only now.\n',
      );
    } else {
      process.stdout.write(`Using the generated credential in ${path.join(dataDir, 'credentials.json')} (AK ${credential.ak}, project ${credential.projectId}).\n`);
    }
  }

  // The address policy: `registered` by default once several projects share the service (one
  // must not be able to aim Ferry at another's servers), `any` for a single project.
  const projects = new Set([...akSk, ...config.tokens].map((c) => c.projectId));
  const policyConfig = config.addressPolicy ?? { mode: projects.size > 1 ? ('registered' as const) : ('any' as const), allow: [] };
  if (policyConfig.mode === 'any') {
    const line = 'address policy "any": tasks may reach every address this host can (set "addressPolicy" in the config to restrict them)';
    logger.warn(line);
    process.stderr.write(`ferry: warning: ${line}\n`);
  }
  const instances = new InstanceRegistry(config.instances);
  const objectStoreAddress = config.objectStore?.endpoint ? hostPortOf(config.objectStore.endpoint) : null;
  // What a task's worker may reach: under `registered`, its project's instances (and the
  // configured object store) plus any `allow` rules.
  const workerPolicy = (task: Task): AddressPolicySpec | undefined => {
    if (policyConfig.mode === 'any') return undefined;
    if (policyConfig.mode === 'allow') return { mode: 'allow', allow: policyConfig.allow, registered: [] };
    return { mode: 'registered', allow: policyConfig.allow, registered: [...instances.addressesOf(task.projectId), ...(objectStoreAddress ? [objectStoreAddress] : [])] };
  };

  const store: TaskStore =
    config.store.kind === 'postgres'
      ? await PgTaskStore.open(config.store.url, config.store.schema ? { schema: config.store.schema } : {})
      : SqliteTaskStore.open(path.join(dataDir, 'ferry.db'));
  if (config.store.kind === 'postgres') logger.info({ store: redactUrl(config.store.url), schema: config.store.schema ?? null }, 'task store: PostgreSQL');
  const secrets = config.secretKeyFile ? SecretBox.loadOrCreateFile(config.secretKeyFile) : SecretBox.loadOrCreate(dataDir);
  const node = { id: nodeIdOf(config.node.id, dataDir), listen: `${host.includes(':') ? `[${host}]` : host}:${port}`, capacity: config.node.capacity, leaseMs: config.node.leaseMs };
  const manager = new TaskManager(store, secrets, logger, { buckets: config.buckets, objectStore: config.objectStore, backupsDir: config.backupsDir }, {
    workerPolicy,
    firstConnectTimeoutMs: config.firstConnectTimeoutSeconds * 1000,
    cutover: { defaultHook: config.cutover.hook, pauseTimeoutMs: config.cutover.pauseTimeoutSeconds * 1000, drainTimeoutMs: config.cutover.drainTimeoutSeconds * 1000 },
    node,
  });
  const app = await buildServer({
    store,
    manager,
    secrets,
    credentials: new CredentialRegistry(akSk, config.tokens),
    instances,
    logger,
    addressPolicy: makeAddressPolicy({ mode: policyConfig.mode, allow: policyConfig.allow, registered: [] }),
    rateLimit: config.rateLimit,
    requireSignedHost: config.requireSignedHost,
    allowedHookCommands: config.cutover.allowedHookCommands,
    metricsToken: config.metricsToken,
  });
  await manager.recover();
  await app.listen({ host, port });
  const address = app.server.address();
  const shown = typeof address === 'object' && address ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}` : opts.listen;
  process.stdout.write(`Ferry is listening on http://${shown} (data in ${dataDir})\n`);
  process.stdout.write(`Console: http://${shown}/console/  Metrics: http://${shown}/metrics\n`);
  logger.info({ listen: shown, dataDir, node: node.id }, 'service started');

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  logger.info('shutting down');
  await app.close();
  await manager.shutdown();
  await store.close();
}
