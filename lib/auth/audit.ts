import type { Knex } from 'knex';
import { currentRequest } from '../logging.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { AuditRepository } from '../repositories/audit.ts';
import type { Principal } from './jwt.ts';

/**
 * Names of audited actions. Every admin or destructive action records one entry:
 * who (the caller's user id, or `system`), when, what (this name + target + details)
 * and the request id. Add a name here when adding such an action.
 */
export const AUDIT_ACTIONS = [
  'job.cancel',
  'job.retry',
  'document.delete',
  'dead-letter.replay',
  'models.publish',
  'models.reindex.start',
  'models.reindex.cancel',
  'models.switch',
  'models.switch.forced',
  'models.rollback',
  'models.delete',
  'user.roles',
  'api-key.create',
  'api-key.revoke',
  'maintenance.enter',
  'maintenance.leave',
  'backup.create',
  'backup.retention',
  'backup.restore',
  'sweep.run',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
/** What an audit action name looks like (the read route filters by it). */
export const AUDIT_ACTION_PATTERN = /^[a-z][a-z-]*(\.[a-z][a-z-]*)+$/;

export interface AuditEvent {
  action: AuditAction;
  target?: string | null;
  details?: Record<string, unknown>;
  /** A deployment-wide action (model switch, maintenance, backup): recorded without a tenant, read by admins only. */
  deploymentWide?: boolean;
}

/**
 * Records one audit entry; call it from any service after the action took effect
 * (inside the action's transaction when there is one, by passing `trx`):
 *
 *   await audit(knex, ctx.meta.auth, { action: 'model.switch', target: 'e5@2', deploymentWide: true });
 *
 * The request id comes from the call's logging context, so the entry and the
 * request's log lines share it.
 */
export async function audit(knex: Knex, actor: Principal | undefined | null, event: AuditEvent, trx?: Knex): Promise<void> {
  const scope = event.deploymentWide || !actor ? null : tenantScope(actor.tenantId);
  await new AuditRepository(knex).record(
    scope,
    {
      actor: actor?.userId ?? 'system',
      action: event.action,
      target: event.target ?? null,
      details: actor && event.deploymentWide ? { ...event.details, tenantId: actor.tenantId } : event.details,
      requestId: currentRequest()?.requestId ?? null,
    },
    trx,
  );
}
