import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis-server.js';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ServiceConfigFile {
  credentials?: ({ ak: string; sk: string; projectId: string } | { token: string; projectId: string })[];
  instances?: { id: string; projectId: string; name: string; addrs: string; password?: string; tls?: boolean | Record<string, unknown>; sentinelPassword?: string }[];
  buckets?: Record<string, string>;
  backupsDir?: string;
  addressPolicy?: string | { mode?: string; allow?: string[] };
  rateLimit?: { max?: number; timeWindowMs?: number };
  firstConnectTimeoutSeconds?: number;
  objectStore?: Record<string, unknown>;
  metricsToken?: string;
  /** Several nodes on one PostgreSQL database (issue 13). */
  store?: { postgres: string; schema?: string };
  node?: { id?: string; capacity?: number; leaseSeconds?: number };
  secretKeyFile?: string;
}

/** A real `ferry serve` process (the built dist/cli.js) on a free loopback port. */
export interface Service {
  port: number;
  /** The serve process (its children are the task workers). */
  pid(): number;
  endpoint: string;
  dataDir: string;
  output(): string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL of the service process alone, as a crash or the OOM killer would (its workers live on). */
  kill9(): Promise<void>;
  /** SIGKILL of the service's whole process group: the service and every worker at once. */
  killGroup(): Promise<void>;
  /** Starts the service again on the same port and data dir. */
  restart(): Promise<void>;
  /** Remove the data dir (after stop). */
  cleanup(): void;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) {
    try {
      process.kill(-c.pid!, 'SIGKILL'); // the group: the service and its workers
    } catch {
      c.kill('SIGKILL');
    }
  }
});

export async function startService(config: ServiceConfigFile, opts: { dataDir?: string } = {}): Promise<Service> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'ferry-service-'));
  const configFile = path.join(dataDir, 'test-config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const port = await freePort();
  let child: ChildProcess;
  let out = '';

  const launch = async (): Promise<void> => {
    out = '';
    child = spawn(process.execPath, [path.join(root, 'dist/cli.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--config', configFile, '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: killGroup() takes the service and its workers at once.
      detached: true,
      env: { ...process.env, FERRY_AK: '', FERRY_SK: '', FERRY_PROJECT_ID: '' },
    });
    running.add(child);
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('Ferry is listening')) {
      if (child.exitCode !== null) throw new Error(`ferry serve exited ${child.exitCode}:\n${out}`);
      if (Date.now() > deadline) throw new Error(`ferry serve did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const waitExit = (signal: NodeJS.Signals): Promise<void> =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    }).then(() => {
      running.delete(child);
    });

  await launch();
  return {
    port,
    pid: () => child.pid!,
    endpoint: `http://127.0.0.1:${port}`,
    dataDir,
    output: () => out,
    stop: () => waitExit('SIGTERM'),
    kill9: () => waitExit('SIGKILL'),
    killGroup: async () => {
      const pid = child.pid!;
      const exited = waitExit('SIGKILL');
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await exited;
      // The workers die with the group; wait until none is left.
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(-pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    restart: launch,
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

export interface SdkResponse {
  httpStatusCode: number;
  [field: string]: unknown;
}

export interface SdkError {
  httpStatusCode: number;
  errorCode?: string;
  errorMsg?: string;
  requestId?: string;
}

/**
 * The Huawei Cloud SDK's generic client (HcClient) with AK/SK credentials, pointed at the local
 * service: requests are signed exactly as DCS's own SDK signs them.
 */
export function sdkClient(endpoint: string, ak: string, sk: string, projectId: string) {
  const { BasicCredentials } = require('@huaweicloud/huaweicloud-sdk-core') as {
    BasicCredentials: new () => { withAk(a: string): unknown };
  };
  const { ClientBuilder } = require('@huaweicloud/huaweicloud-sdk-core/ClientBuilder') as {
    ClientBuilder: new (f: (h: unknown) => unknown) => {
      withEndpoint(e: string): { withCredential(c: unknown): { withOptions(o: unknown): { build(): HcClient } } };
    };
  };
  interface HcClient {
    sendRequest(options: Record<string, unknown>): Promise<SdkResponse>;
  }
  const credential = (new BasicCredentials().withAk(ak) as { withSk(s: string): { withProjectId(p: string): unknown } }).withSk(sk).withProjectId(projectId);
  const hc = new ClientBuilder((h) => h).withEndpoint(endpoint).withCredential(credential).withOptions({ customUserAgent: 'ferry-test' }).build();
  return {
    /** Resolves with the response, or with the SDK's exception (4xx/5xx) as a value. */
    async call(method: string, url: string, opts: { data?: unknown; query?: Record<string, unknown>; pathParams?: Record<string, string> } = {}): Promise<SdkResponse | SdkError> {
      try {
        return await hc.sendRequest({
          method,
          url,
          contentType: 'application/json',
          queryParams: opts.query ?? {},
          pathParams: opts.pathParams ?? {},
          headers: {},
          ...(opts.data !== undefined ? { data: opts.data } : {}),
        });
      } catch (e) {
        return e as SdkError;
      }
    },
  };
}
