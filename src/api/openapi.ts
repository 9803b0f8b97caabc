/**
 * The OpenAPI 3.1 description of the API, served at /openapi.json. Ferry's additions to DCS's
 * API carry `x-ferry-extension: true`.
 */
const str = { type: 'string' } as const;
const strArray = { type: 'array', items: str } as const;
const error = { $ref: '#/components/schemas/Error' } as const;
const errors = {
  '400': { description: 'Invalid request (DCS.4004, DCS.4005, DCS.4800, DCS.4063, DCS.4133, DCS.4957)', content: { 'application/json': { schema: error } } },
  '401': { description: 'Authentication failed (APIGW.0301, DCS.1004)', content: { 'application/json': { schema: error } } },
  '404': { description: 'Unknown path (DCS.4001) or instance (DCS.3022)', content: { 'application/json': { schema: error } } },
  '413': { description: 'Body too large (APIGW.0201)', content: { 'application/json': { schema: error } } },
};
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const taskId = { name: 'task_id', in: 'path', required: true, schema: str };
const projectId = { name: 'project_id', in: 'path', required: true, schema: str };

function op(summary: string, operationId: string, extra: Record<string, unknown> = {}, ok: Record<string, unknown> = { '200': { description: 'OK', ...json({ type: 'object' }) } }) {
  return { summary, operationId, parameters: [projectId], responses: { ...ok, ...errors }, ...extra };
}

const endpoint = {
  type: 'object',
  description: 'Exactly one of id (a registered instance) and addrs.',
  properties: { id: str, addrs: { type: 'string', description: 'host:port[,host:port...]' }, password: { type: ['string', 'null'] } },
};

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Ferry migration service',
      version: '0.1.0',
      description: "Compatible with Huawei Cloud DCS v2's data-migration API: same paths, bodies, statuses, errors and AK/SK signing (SDK-HMAC-SHA256) or X-Auth-Token.",
    },
    components: {
      securitySchemes: {
        aksk: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=... with X-Sdk-Date' },
        token: { type: 'apiKey', in: 'header', name: 'X-Auth-Token' },
      },
      schemas: {
        Error: { type: 'object', properties: { error_code: str, error_msg: str, error_ext_msg: { type: ['string', 'null'] } }, required: ['error_code', 'error_msg'] },
        Endpoint: endpoint,
      },
    },
    security: [{ aksk: [] }, { token: [] }],
    paths: {
      '/v2/{project_id}/migration/instance': {
        post: op('CreateOnlineMigrationTask', 'CreateOnlineMigrationTask', {
          requestBody: json({ type: 'object', required: ['name'], properties: { name: str, description: str, vpc_id: str, subnet_id: str, security_group_id: str } }),
        }, { '200': { description: 'Created (status RUNNING, awaiting configuration)', ...json({ type: 'object', properties: { instance_id: str, job_id: str } }) } }),
      },
      '/v2/{project_id}/migration/{task_id}/task': {
        post: {
          ...op('SetOnlineMigrationTask', 'SetOnlineMigrationTask', {
            requestBody: json({
              type: 'object',
              required: ['migration_method', 'resume_mode', 'source_instance', 'target_instance'],
              properties: {
                migration_method: { enum: ['full_amount_migration', 'incremental_migration'] },
                resume_mode: { enum: ['auto', 'manual'] },
                bandwidth_limit_mb: { oneOf: [{ type: 'string' }, { type: 'integer', minimum: 1, maximum: 10240 }] },
                source_instance: { $ref: '#/components/schemas/Endpoint' },
                target_instance: { $ref: '#/components/schemas/Endpoint' },
                write_error_policy: { enum: ['fail', 'skip'], 'x-ferry-extension': true, description: 'a write the target refuses for good: fail the task (default) or log and skip it' },
                source_mode: { enum: ['auto', 'psync', 'scan'], 'x-ferry-extension': true, description: 'how the source is read: auto (default: PSYNC, or scan when the source refuses it), psync, scan (SCAN + DUMP and keyspace notifications)' },
              },
            }),
          }),
          parameters: [projectId, taskId],
        },
      },
      '/v2/{project_id}/migration-task': {
        post: op('CreateMigrationTask (backupfile_import)', 'CreateMigrationTask', {
          requestBody: json({
            type: 'object',
            required: ['task_name', 'migration_type', 'migration_method', 'target_instance', 'backup_files'],
            properties: {
              task_name: str,
              description: str,
              migration_type: { enum: ['backupfile_import'] },
              migration_method: { enum: ['full_amount_migration', 'incremental_migration'] },
              target_instance: { $ref: '#/components/schemas/Endpoint' },
              backup_files: {
                type: 'object',
                properties: {
                  file_source: { enum: ['self_build_obs', 'backup_record'] },
                  bucket_name: str,
                  backup_id: str,
                  files: { type: 'array', items: { type: 'object', required: ['file_name'], properties: { file_name: str, size: str, update_at: str } } },
                },
              },
            },
          }),
        }),
      },
      '/v2/{project_id}/migration-tasks': {
        get: {
          ...op('ListMigrationTask', 'ListMigrationTask'),
          parameters: [projectId, { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } }, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } }, { name: 'name', in: 'query', schema: str }],
        },
      },
      '/v2/{project_id}/migration-task/{task_id}': {
        get: { ...op('ShowMigrationTask', 'ShowMigrationTask'), parameters: [projectId, taskId] },
        put: {
          ...op('UpdateMigrationTask', 'UpdateMigrationTask', {
            requestBody: json({
              type: 'object',
              properties: {
                resume_mode: { enum: ['auto', 'manual'] },
                bandwidth_limit_mb: { oneOf: [{ type: 'string' }, { type: 'integer' }], 'x-ferry-extension': true },
              },
            }),
          }),
          parameters: [projectId, taskId],
        },
      },
      '/v2/{project_id}/migration-task/{task_id}/stats': {
        get: {
          ...op('ShowMigrationTaskStats', 'ShowMigrationTaskStats', {}, {
            '200': {
              description: 'Progress; keys_migrated, write_errors and reconnects are Ferry extensions',
              ...json({
                type: 'object',
                properties: {
                  full_migration_progress: str, offset: str, source_dbsize: str, target_dbsize: str, target_input_kbps: str, target_ops: str, is_migrating: { type: 'boolean' },
                  keys_migrated: { ...str, 'x-ferry-extension': true }, write_errors: { ...str, 'x-ferry-extension': true }, reconnects: { ...str, 'x-ferry-extension': true },
                },
              }),
            },
          }),
          parameters: [projectId, taskId],
        },
      },
      '/v2/{project_id}/migration-task/{task_id}/logs': {
        get: {
          ...op('ListMigrationTaskLogs', 'ListMigrationTaskLogs'),
          parameters: [projectId, taskId, { name: 'offset', in: 'query', schema: { type: 'integer' } }, { name: 'limit', in: 'query', schema: { type: 'integer' } }, { name: 'log_level', in: 'query', schema: { enum: ['INFO', 'WARN', 'ERROR', 'DEBUG'] } }],
        },
      },
      '/v2/{project_id}/migration-task/{task_id}/stop': { post: { ...op('StopMigrationTask', 'StopMigrationTask'), parameters: [projectId, taskId] } },
      '/v2/{project_id}/migration-task/{task_id}/sync-stop': {
        post: { ...op('StopMigrationTaskSync', 'StopMigrationTaskSync', {}, { '204': { description: 'Stopped' } }), parameters: [projectId, taskId] },
      },
      '/v2/{project_id}/migration-task/batch-stop': {
        post: op('BatchStopMigrationTasks', 'BatchStopMigrationTasks', { requestBody: json({ type: 'object', required: ['migration_tasks'], properties: { migration_tasks: strArray } }) }),
      },
      '/v2/{project_id}/migration-tasks/batch-restart': {
        post: op('BatchRestartOnlineMigrationTasks', 'BatchRestartOnlineMigrationTasks', { requestBody: json({ type: 'object', required: ['migration_tasks'], properties: { migration_tasks: { ...strArray, maxItems: 50 } } }) }),
      },
      '/v2/{project_id}/migration-tasks/delete': {
        delete: op('DeleteMigrationTask', 'DeleteMigrationTask', { requestBody: json({ type: 'object', required: ['task_id_list'], properties: { task_id_list: strArray } }) }),
      },
      '/v2/{project_id}/migration-task/{task_id}/exchange-ip': { post: { ...op('ExchangeInstanceIp (not supported yet)', 'ExchangeInstanceIp'), parameters: [projectId, taskId] } },
      '/v2/{project_id}/migration-task/{task_id}/rollback-ip': { post: { ...op('RollbackExchangeInstanceIp (not supported yet)', 'RollbackExchangeInstanceIp'), parameters: [projectId, taskId] } },
      '/v2/{project_id}/migration-task/{task_id}/verify': {
        post: {
          ...op('Verify the task\'s source and target (Ferry extension)', 'VerifyMigrationTask', {
            'x-ferry-extension': true,
            requestBody: json({ type: 'object', properties: { rounds: { type: 'integer', minimum: 1, maximum: 20 }, ttl_tolerance_ms: { type: 'integer' } } }),
          }),
          parameters: [projectId, taskId],
        },
        get: { ...op('The last verification and its result (Ferry extension)', 'ShowMigrationTaskVerification', { 'x-ferry-extension': true }), parameters: [projectId, taskId] },
      },
      '/v2/{project_id}/jobs/{job_id}': {
        get: { ...op('ShowJobInfo', 'ShowJobInfo'), parameters: [projectId, { name: 'job_id', in: 'path', required: true, schema: str }] },
      },
    },
  };
}
