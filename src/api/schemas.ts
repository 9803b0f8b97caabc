/**
 * The JSON schemas of every route: the one description of what each operation takes and
 * returns. Fastify compiles the request parts with Ajv (src/api/validation.ts) and
 * @fastify/swagger turns the same objects into /openapi.json, so the document cannot drift from
 * what is enforced. Ferry's additions to DCS's API carry `x-ferry-extension: true`.
 *
 * Conventions: DCS's SDKs send explicit nulls for unused members, so optional fields accept null;
 * unknown fields are ignored (a newer SDK may send more); `description` of a field is also the
 * "why" of its validation error when the rule is not obvious from the keyword.
 */

/** Mutating operations are audited and replay-protected; these are their names in the audit log. */
export type OperationId = string;

const ext = { 'x-ferry-extension': true } as const;

const PORT = '(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d\\d|6[0-4]\\d{3}|[1-5]\\d{4}|[1-9]\\d{0,3})';
const HOST = '(?:\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)';
const ADDR = `${HOST}:${PORT}`;
/** `host:port[,host:port...]`, at most 64 addresses; empty means "not given". */
export const ADDRS_PATTERN = `^(?:\\s*${ADDR}\\s*(?:,\\s*${ADDR}\\s*){0,63})?$`;

/** An extension: `sentinel://host:port[,host:port...]/master-name` (Sentinel's password goes in sentinel_password). */
export const SENTINEL_PATTERN = `^sentinel://${ADDR}(?:,${ADDR}){0,15}/[A-Za-z0-9._-]{1,128}$`;

/** Names shown in logs and lists: no control characters (NUL, CR/LF would forge a log line) and not blank. */
const NAME_PATTERN = '^(?=[\\s\\S]*\\S)[^\\p{Cc}\\u2028\\u2029]*$';
/** Free text: tabs and line breaks allowed, other control characters not. */
const TEXT_PATTERN = '^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$';

const nullable = <T extends Record<string, unknown>>(s: T) => ({ ...s, type: [s.type as string, 'null'] });

export const nameSchema = (maxLength: number) => ({
  type: 'string',
  minLength: 1,
  maxLength,
  pattern: NAME_PATTERN,
  description: `At most ${maxLength} characters, not blank, no control characters.`,
});

const text = (maxLength: number) => nullable({ type: 'string', maxLength, pattern: TEXT_PATTERN, description: `At most ${maxLength} characters, no control characters but tab and line breaks.` });
const plainId = (maxLength: number) => nullable({ type: 'string', maxLength, pattern: NAME_PATTERN.replace('(?=[\\s\\S]*\\S)', ''), description: `At most ${maxLength} characters, no control characters.` });

export const MIGRATION_METHODS = ['full_amount_migration', 'incremental_migration'] as const;
export const RESUME_MODES = ['auto', 'manual'] as const;
export const MIGRATION_TYPES = ['backupfile_import', 'online_migration'] as const;
export const LOG_LEVELS = ['INFO', 'WARN', 'ERROR', 'DEBUG'] as const;
export const WRITE_ERROR_POLICIES = ['fail', 'skip'] as const;
export const TARGET_CONFLICTS = ['fail', 'replace', 'purge-first'] as const;

const bandwidth = {
  description: 'An integer from 1 to 10240 (MB/s), as a number or a numeric string.',
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 10240 },
    { type: 'string', pattern: '^\\s*(?:[1-9]\\d{0,3}|10[01]\\d\\d|102[0-3]\\d|10240)\\s*$' },
    { type: 'string', maxLength: 0 },
    { type: 'null' },
  ],
};

/** source_instance / target_instance: a registered instance (id) or addresses (addrs). */
const endpoint = (what: string) => ({
  type: 'object',
  description: `The ${what}: a registered instance (id) or addresses (addrs), exactly one of them.`,
  // allOf evaluates in order: each field's own rules first (so a bad addrs is named as such),
  // then the rule over the pair.
  allOf: [
    {
      properties: {
        id: plainId(64),
        addrs: {
          type: ['string', 'null'],
          maxLength: 4096,
          description: 'host:port[,host:port...]: any nodes of a cluster, or a master and its replicas (at most 64); or (extension) sentinel://host:port[,host:port...]/master-name.',
          anyOf: [{ type: 'null' }, { pattern: ADDRS_PATTERN }, { pattern: SENTINEL_PATTERN }],
        },
        password: nullable({ type: 'string', maxLength: 1024 }),
        name: text(128),
        tls: {
          ...ext,
          description: 'Extension: connect with TLS. true (the system CAs), or files on the service host: ca_file, cert_file with key_file (mutual TLS), servername (SNI), insecure (no certificate check; a warning is logged).',
          oneOf: [
            { type: 'boolean' },
            { type: 'null' },
            {
              type: 'object',
              properties: {
                ca_file: nullable({ type: 'string', maxLength: 4096 }),
                cert_file: nullable({ type: 'string', maxLength: 4096 }),
                key_file: nullable({ type: 'string', maxLength: 4096 }),
                servername: nullable({ type: 'string', maxLength: 255 }),
                insecure: { type: ['boolean', 'null'] },
              },
              dependencies: { cert_file: ['key_file'], key_file: ['cert_file'] },
            },
          ],
        },
        sentinel_password: { ...ext, ...nullable({ type: 'string', maxLength: 1024 }), description: "Extension: Sentinel's own password, for sentinel:// addrs." },
      },
    },
    {
      description: 'Give exactly one of id and addrs.',
      oneOf: [
        { required: ['id'], properties: { id: { type: 'string', minLength: 1 } } },
        { required: ['addrs'], properties: { addrs: { type: 'string', minLength: 1 } } },
      ],
    },
  ],
});

const idList = (maxItems: number) => ({
  type: 'array',
  maxItems,
  items: { type: 'string', maxLength: 64 },
  description: `Task ids, at most ${maxItems}.`,
});

const projectParam = { project_id: { type: 'string', maxLength: 64, description: 'The IAM project id (32 hex digits).' } };
const taskParams = { type: 'object', properties: { ...projectParam, task_id: { type: 'string', maxLength: 200 } } };
const projectParams = { type: 'object', properties: projectParam };

const str = { type: 'string' } as const;
const strOrNull = { type: ['string', 'null'] } as const;

// ---------------------------------------------------------------------------------------------
// Responses (documentation: Ferry's serializer is JSON.stringify, so these never drop a field)

export const errorSchema = {
  $id: 'DcsError',
  type: 'object',
  description: "DCS's error shape (every error, whichever layer answers it).",
  required: ['error_code', 'error_msg'],
  properties: { error_code: str, error_msg: str, error_ext_msg: strOrNull },
};

const errorRef = { $ref: 'DcsError#' };
const errors = {
  400: { description: 'Invalid request: DCS.4004 (empty body), DCS.4005 (not JSON), DCS.4800 / DCS.4063 (a field, named), DCS.4133 (unknown task), DCS.4957 (task state)', ...errorRef },
  401: { description: 'Authentication failed (APIGW.0301), or the path names another project (DCS.1004)', ...errorRef },
  404: { description: 'Unknown path (DCS.4001) or instance (DCS.3022)', ...errorRef },
  413: { description: 'Body too large for this operation (APIGW.0201)', ...errorRef },
  429: { description: 'Too many requests for this access key (APIGW.0308)', ...errorRef },
};

const endpointView = {
  type: ['object', 'null'],
  properties: { id: str, name: str, addrs: str, ip: str, port: str, password: { ...strOrNull, description: 'Never the password: "********" when one is set.' }, task_status: str, db: str, proxy_multi_db: { type: 'boolean' } },
};

const taskDetail = {
  type: 'object',
  properties: {
    task_id: str, task_name: str, description: str, status: str, migration_type: str, migration_method: str, ecs_tenant_private_ip: str, network_type: str,
    source_instance: endpointView, target_instance: endpointView,
    created_at: str, updated_at: str, released_at: str, version: str, resume_mode: str, supported_features: { type: 'array', items: str },
    tenant_vpc_id: str, tenant_subnet_id: str, tenant_security_group_id: str, bandwidth_limit_mb: str, task_status: str,
    error: str, error_message: strOrNull,
    source_mode: { ...ext, type: 'string', description: 'The source mode asked for: auto, psync or scan.' },
    source_mode_running: { ...ext, type: ['object', 'null'], description: 'The mode the migration runs in (psync or scan) and why.', properties: { mode: str, reason: strOrNull } },
    cutover: {
      ...ext,
      type: 'object',
      description: 'Where the clients are (direction forward: on the source, synced source → target; reverse: on the target, synced target → source), the hook, and the last switch: its measured write pause (ms), drain time, hook result and error.',
      properties: {
        direction: { enum: ['forward', 'reverse'] },
        task_status: str,
        switch_hook: { type: ['string', 'null'] },
        last: {
          type: ['object', 'null'],
          properties: {
            action: str, ok: { type: 'boolean' }, at: str, pause_ms: { type: ['integer', 'null'] }, drain_ms: { type: ['integer', 'null'] }, error: strOrNull,
            hook: { type: ['object', 'null'], properties: { description: str, ok: { type: 'boolean' }, timed_out: { type: 'boolean' }, detail: str, duration_ms: { type: 'integer' } } },
          },
        },
      },
    },
    db_map: { ...ext, ...str }, dbs: { ...ext, ...str }, db_prefix: { ...ext, ...str },
  },
};

const taskListItem = {
  type: 'object',
  properties: {
    task_id: str, task_name: str, description: str, status: str, migration_type: str, migration_method: str, ecs_tenant_private_ip: str, data_source: str,
    source_instance_name: str, source_instance_id: str, target_instance_addrs: str, target_instance_name: str, target_instance_id: str,
    created_at: str, error_message: strOrNull, resume_mode: str, supported_features: { type: 'array', items: str },
  },
};

const batchResult = {
  type: 'object',
  properties: { migration_tasks: { type: 'array', items: { type: 'object', properties: { task_id: str, result: { enum: ['success', 'failed'] }, error_code: str, error_msg: str } } } },
};

const shortResult = { type: 'object', properties: { id: str, name: str, status: str, error: str } };

const verification = {
  type: 'object',
  ...ext,
  properties: {
    status: { enum: ['none', 'running', 'done', 'failed'] }, started_at: str, finished_at: strOrNull, equal: { type: ['boolean', 'null'] },
    keys_checked: { type: ['integer', 'null'] }, rounds: { type: ['integer', 'null'] }, counts: {}, differences: { type: 'array' }, error: strOrNull,
  },
};

const ok = (description: string, schema: Record<string, unknown>) => ({ 200: { description, ...schema }, ...errors });

// ---------------------------------------------------------------------------------------------
// Routes

export interface RouteSchema {
  operationId: OperationId;
  summary: string;
  description?: string;
  tags?: string[];
  body?: Record<string, unknown>;
  querystring?: Record<string, unknown>;
  params?: Record<string, unknown>;
  response?: Record<string, unknown>;
  [extension: string]: unknown;
}

export const schemas = {
  createOnline: {
    operationId: 'CreateOnlineMigrationTask',
    summary: 'Create an online migration task (status RUNNING, waiting to be configured)',
    params: projectParams,
    body: {
      type: 'object',
      required: ['name'],
      properties: { name: nameSchema(64), description: text(1024), vpc_id: plainId(64), subnet_id: plainId(64), security_group_id: plainId(64) },
    },
    response: ok('Created; job_id is for ShowJobInfo', { type: 'object', properties: { instance_id: str, job_id: str } }),
  },

  configure: {
    operationId: 'SetOnlineMigrationTask',
    summary: 'Configure an online migration task and start it',
    params: taskParams,
    body: {
      type: 'object',
      required: ['migration_method', 'resume_mode', 'source_instance', 'target_instance'],
      properties: {
        migration_method: { enum: MIGRATION_METHODS, description: 'full_amount_migration: the snapshot; incremental_migration: then every later write until stopped.' },
        resume_mode: { enum: RESUME_MODES, description: 'auto: reconnect and resume after a lost link (a task that never connected fails after a bounded time); manual: fail on the first loss.' },
        bandwidth_limit_mb: bandwidth,
        source_instance: endpoint('source'),
        target_instance: endpoint('target'),
        write_error_policy: { ...ext, enum: [...WRITE_ERROR_POLICIES, null], description: 'A write the target refuses for good: fail the task (default) or log, count and skip it.' },
        drop_flush: { ...ext, type: ['boolean', 'null'], description: 'Do not forward FLUSHALL / FLUSHDB from the source (default false).' },
        target_conflict: {
          ...ext,
          enum: [...TARGET_CONFLICTS, null],
          description: 'Keys already on the target before the full sync: fail (default: the task fails naming how many keys in which dbs), replace (write over them), purge-first (empty the target first).',
        },
        source_mode: {
          ...ext,
          enum: ['auto', 'psync', 'scan', null],
          description: 'How the source is read: auto (default: PSYNC, or scan when the source refuses it), psync, scan (SCAN + DUMP and keyspace notifications).',
        },
        switch_hook: {
          ...ext,
          description:
            'What moves the clients at ExchangeInstanceIp / RollbackExchangeInstanceIp: {"command": "/abs/path", "args": [...]} (run without a shell on the service host; only commands listed in the service config cutover.allowedHookCommands) or {"url": "http(s)://..."} (a POST; the address must pass the address policy); timeout_seconds (default 10). Absent: the service default (cutover.hook).',
          oneOf: [
            { type: 'null' },
            {
              type: 'object',
              required: ['command'],
              properties: { command: { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/[^\\x00]*$' }, args: { type: ['array', 'null'], maxItems: 64, items: { type: 'string', maxLength: 4096 } }, timeout_seconds: { type: ['integer', 'null'], minimum: 1, maximum: 600 } },
            },
            {
              type: 'object',
              required: ['url'],
              properties: { url: { type: 'string', maxLength: 4096, pattern: '^[hH][tT][tT][pP][sS]?://' }, timeout_seconds: { type: ['integer', 'null'], minimum: 1, maximum: 600 } },
            },
          ],
        },
        db_map: { ...ext, ...nullable({ type: 'string', maxLength: 1024, pattern: '^\\s*(?:\\d{1,5}\\s*:\\s*\\d{1,5}\\s*(?:,\\s*\\d{1,5}\\s*:\\s*\\d{1,5}\\s*)*)?$' }), description: 'Source db N to target db M: "N:M,N2:M2" (standalone targets; a cluster target has db 0 only).' },
        dbs: { ...ext, ...nullable({ type: 'string', maxLength: 1024, pattern: '^\\s*(?:\\d{1,5}\\s*(?:,\\s*\\d{1,5}\\s*)*)?$' }), description: 'Migrate only these source dbs: "0,1,5".' },
        db_prefix: { ...ext, ...nullable({ type: 'string', maxLength: 4096, pattern: '^[^\\p{Cc}]*$' }), description: 'A key prefix per source db: "1=db1:,2=db2:" (keeps dbs apart on a cluster target).' },
      },
    },
    response: ok('Started (status FULLMIGRATING)', shortResult),
  },

  createImport: {
    operationId: 'CreateMigrationTask',
    summary: 'Create a backup-file import task (migration_type backupfile_import); online tasks are created with CreateOnlineMigrationTask',
    params: projectParams,
    body: {
      type: 'object',
      required: ['task_name', 'migration_type', 'migration_method', 'target_instance', 'backup_files'],
      properties: {
        task_name: nameSchema(64),
        description: text(1024),
        migration_type: { enum: MIGRATION_TYPES },
        migration_method: { enum: MIGRATION_METHODS },
        target_instance: endpoint('target'),
        backup_files: {
          type: 'object',
          allOf: [
            {
              properties: {
                file_source: { enum: ['self_build_obs', 'backup_record', null], description: 'self_build_obs (a bucket, the default) or backup_record (backup_id).' },
                bucket_name: plainId(255),
                backup_id: plainId(255),
                files: {
                  type: ['array', 'null'],
                  maxItems: 1000,
                  items: {
                    type: 'object',
                    required: ['file_name'],
                    properties: { file_name: nameSchema(1024), size: { type: ['string', 'number', 'null'] }, update_at: strOrNull },
                  },
                },
              },
            },
            {
              if: { required: ['file_source'], properties: { file_source: { const: 'backup_record' } } },
              then: { required: ['backup_id'], properties: { backup_id: { type: 'string', minLength: 1, description: 'A backup_record import needs backup_id.' } } },
              else: {
                required: ['bucket_name', 'files'],
                properties: { bucket_name: { type: 'string', minLength: 1, description: 'An OBS import needs bucket_name and files.' }, files: { type: 'array', minItems: 1, description: 'An OBS import needs bucket_name and files.' } },
              },
            },
          ],
        },
      },
    },
    response: ok('Created (status MIGRATING, or FAILED with the reason)', shortResult),
  },

  startVerify: {
    operationId: 'VerifyMigrationTask',
    summary: "Verify the task's source and target, key by key (Ferry extension)",
    ...ext,
    params: taskParams,
    body: {
      type: 'object',
      properties: {
        rounds: { type: ['integer', 'null'], minimum: 1, maximum: 20, description: 'Re-check differing keys this many rounds (1-20, default 1).' },
        ttl_tolerance_ms: { type: ['integer', 'null'], minimum: 0, maximum: 3_600_000, description: 'Allowed TTL difference (default 2000).' },
      },
    },
    response: ok('Started', verification),
  },

  showVerify: {
    operationId: 'ShowMigrationTaskVerification',
    summary: 'The last verification and its result (Ferry extension)',
    ...ext,
    params: taskParams,
    response: ok('The verification', verification),
  },

  list: {
    operationId: 'ListMigrationTask',
    summary: 'List the tasks of the project, newest first',
    params: projectParams,
    querystring: {
      type: 'object',
      properties: {
        offset: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 },
        limit: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
        name: { type: 'string', maxLength: 64, description: 'Tasks whose name contains this.' },
      },
    },
    response: ok('A page of tasks; count is the number of all matches', { type: 'object', properties: { count: { type: 'integer' }, migration_tasks: { type: 'array', items: taskListItem } } }),
  },

  show: { operationId: 'ShowMigrationTask', summary: 'Show a task', params: taskParams, response: ok('The task', taskDetail) },

  stats: {
    operationId: 'ShowMigrationTaskStats',
    summary: 'Progress of a task',
    params: taskParams,
    response: ok('Progress (numbers as strings, as DCS models them); keys_migrated, write_errors and reconnects are Ferry extensions', {
      type: 'object',
      properties: {
        full_migration_progress: str, offset: str, source_dbsize: str, target_dbsize: str, target_input_kbps: str, target_ops: str, is_migrating: { type: 'boolean' },
        keys_migrated: { ...str, ...ext }, write_errors: { ...str, ...ext }, reconnects: { ...str, ...ext },
      },
    }),
  },

  logs: {
    operationId: 'ListMigrationTaskLogs',
    summary: 'The log of a task, oldest first',
    params: taskParams,
    querystring: {
      type: 'object',
      properties: {
        offset: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 },
        limit: { type: 'integer', minimum: 0, maximum: 1000, default: 10 },
        log_level: { enum: LOG_LEVELS },
      },
    },
    response: ok('A page of log entries', {
      type: 'object',
      properties: { log_num: { type: 'integer' }, migration_logs: { type: 'array', items: { type: 'object', properties: { created_at: str, log_level: str, message: str, log_code: str, keyword: { type: 'array', items: str } } } } },
    }),
  },

  update: {
    operationId: 'UpdateMigrationTask',
    summary: 'Change the resume mode (and, as a Ferry extension, the bandwidth limit) of a task',
    params: taskParams,
    body: {
      type: 'object',
      properties: { resume_mode: { enum: [...RESUME_MODES, null] }, bandwidth_limit_mb: { ...bandwidth, ...ext } },
    },
    response: ok('Updated', { type: 'object' }),
  },

  stop: { operationId: 'StopMigrationTask', summary: 'Stop a task (asynchronous: TERMINATING, then TERMINATED)', params: taskParams, response: ok('The task', taskDetail) },

  syncStop: {
    operationId: 'StopMigrationTaskSync',
    summary: 'Stop a task and answer once it is stopped',
    params: taskParams,
    response: { 204: { description: 'Stopped', type: 'null' }, ...errors },
  },

  batchStop: {
    operationId: 'BatchStopMigrationTasks',
    summary: 'Stop several tasks',
    params: projectParams,
    body: { type: 'object', required: ['migration_tasks'], properties: { migration_tasks: idList(1000) } },
    response: ok('One result per task', batchResult),
  },

  batchRestart: {
    operationId: 'BatchRestartOnlineMigrationTasks',
    summary: 'Restart failed or stopped online tasks (from their checkpoint when there is one)',
    params: projectParams,
    body: { type: 'object', required: ['migration_tasks'], properties: { migration_tasks: idList(50) } },
    response: ok('One result per task', batchResult),
  },

  delete: {
    operationId: 'DeleteMigrationTask',
    summary: 'Delete tasks (a migrating one is stopped first); unknown ids are ignored',
    params: projectParams,
    body: { type: 'object', required: ['task_id_list'], properties: { task_id_list: idList(1000) } },
    response: ok('The ids deleted', { type: 'object', properties: { task_id_list: { type: 'array', items: str } } }),
  },

  exchangeIp: {
    operationId: 'ExchangeInstanceIp',
    summary: "Cut over: move the clients from the source to the target with the task's switch hook, then sync target → source (asynchronous: task_status EXCHANGING, then EXCHANGE_SUCCESS)",
    description: 'Only in INCRMIGEATING. Writes are paused on every source master until the target has applied them, the hook runs, the reverse sync starts, writes resume. On any failure before the hook succeeds nothing changes for clients; the reason is in the task log and in cutover.last.',
    params: taskParams,
    body: {
      type: 'object',
      properties: {
        exchanged_ip: { type: ['array', 'null'], maxItems: 64, items: { type: 'string', maxLength: 255, pattern: NAME_PATTERN }, description: 'Passed on to the hook (FERRY_EXCHANGED_IP).' },
        is_exchange_domain: { type: ['boolean', 'null'], description: 'Passed on to the hook (FERRY_IS_EXCHANGE_DOMAIN).' },
      },
    },
    response: { 204: { description: 'Accepted: the switch runs; ShowMigrationTask shows its progress', type: 'null' }, ...errors },
  },
  rollbackIp: {
    operationId: 'RollbackExchangeInstanceIp',
    summary: 'Undo an exchange: move the clients back to the source and sync source → target again (asynchronous: task_status ROLLING_BACK, then ROLLBACK_SUCCESS)',
    params: taskParams,
    response: { 204: { description: 'Accepted: the rollback runs; ShowMigrationTask shows its progress', type: 'null' }, ...errors },
  },

  job: {
    operationId: 'ShowJobInfo',
    summary: 'A job (CreateOnlineMigrationTask returns one)',
    params: { type: 'object', properties: { ...projectParam, job_id: { type: 'string', maxLength: 200 } } },
    response: ok('The job', { type: 'object', properties: { job_id: str, job_type: str, status: { enum: ['INIT', 'RUNNING', 'SUCCESS', 'FAIL'] }, begin_time: str, end_time: str, fail_reason: strOrNull } }),
  },

  audit: {
    operationId: 'ListAuditLogs',
    summary: 'The audit log of the project: every mutating call, who, what, when and its outcome, newest first (Ferry extension)',
    ...ext,
    params: projectParams,
    querystring: {
      type: 'object',
      properties: { offset: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
    },
    response: ok('A page of audit entries; count is the number of all entries of the project', {
      type: 'object',
      properties: {
        count: { type: 'integer' },
        audit_logs: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              time: str,
              request_id: str,
              actor: { ...str, description: '"ak:<access key>", "token:<first 8 hex of its SHA-256>", or "unauthenticated"' },
              source_ip: str,
              operation: str,
              method: str,
              task_ids: { type: 'array', items: str },
              http_status: { type: 'integer' },
              error_code: { ...str, description: 'Empty when the call succeeded' },
            },
          },
        },
      },
    }),
  },

  nodes: {
    operationId: 'ListNodes',
    summary: 'The Ferry nodes sharing this task store, each with the tasks of this project it holds leases on (Ferry extension)',
    ...ext,
    params: projectParams,
    response: ok('The nodes that heartbeated within the last lease period', {
      type: 'object',
      properties: {
        nodes: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: str,
              listen: { ...str, description: 'host:port of its API' },
              heartbeat_at: { ...str, description: 'Its last heartbeat, ISO 8601 (the store\'s clock)' },
              capacity: { type: 'integer', description: 'The most task leases it takes' },
              self: { type: 'boolean', description: 'The node that answered this request' },
              tasks: { type: 'array', items: str, description: 'Ids of the tasks of this project it holds' },
            },
          },
        },
      },
    }),
  },
} satisfies Record<string, RouteSchema>;
