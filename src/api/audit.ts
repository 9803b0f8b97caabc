import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TaskStore } from '../tasks/store.js';

/** At most this many task ids per entry (a batch of 1000 is summarised by its first ones). */
const MAX_IDS = 50;

/**
 * Records one mutating API call in the audit log: who (access key, token hash, or
 * unauthenticated), what (operation, task ids), when, from where, and the outcome (HTTP status
 * and DCS error code). Never the body: it may hold passwords. The entry goes to the project
 * that was authenticated, or, for a refused caller, to the project the path names, so a
 * project's owners see the attempts made against it.
 */
export async function recordAudit(store: TaskStore, logger: Logger, req: FastifyRequest, status: number): Promise<void> {
  const params = (req.params ?? {}) as { project_id?: unknown; task_id?: unknown };
  const projectId = req.projectId || (typeof params.project_id === 'string' ? params.project_id.slice(0, 64) : '');
  if (projectId === '') return;
  const ids = new Set<string>();
  if (typeof params.task_id === 'string') ids.add(params.task_id.slice(0, 200));
  const body = req.body as { migration_tasks?: unknown; task_id_list?: unknown } | undefined;
  for (const list of [body?.migration_tasks, body?.task_id_list]) {
    if (Array.isArray(list)) for (const id of list) if (typeof id === 'string' && ids.size < MAX_IDS) ids.add(id.slice(0, 200));
  }
  for (const id of req.auditTaskIds ?? []) if (ids.size < MAX_IDS) ids.add(id);
  const schema = req.routeOptions.schema as { operationId?: string } | undefined;
  try {
    await store.appendAudit({
      time: new Date().toISOString(),
      projectId,
      requestId: req.id,
      actor: req.actor,
      sourceIp: req.ip,
      operation: schema?.operationId ?? `${req.method} ${req.routeOptions.url}`,
      method: req.method,
      taskIds: [...ids],
      httpStatus: status,
      errorCode: status >= 400 ? req.errorCode || String(status) : '',
    });
  } catch (e) {
    logger.error({ requestId: req.id, err: (e as Error).message }, 'could not write the audit log');
  }
}
