import type { ServiceSchema } from 'moleculer';
import { currentRequest } from '../../lib/logging.ts';
import { AuditRepository } from '../../lib/repositories/audit.ts';
import { SystemRepository, type MaintenanceMode } from '../../lib/repositories/system.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';
import { requireAllowed } from './admin.ts';

/** Broadcast when maintenance mode changes, so every api replica drops its cached copy at once. */
export const MAINTENANCE_CHANGED_EVENT = 'maintenance.changed';

/** Maintenance mode: stored in the database (every api replica reads it), switched by an admin, audited. */
export function modeActions(runtime: Runtime): NonNullable<ServiceSchema['actions']> {
  const repo = async () => new SystemRepository((await runtime.stores.db()).knex);
  return {
    'mode.get': {
      async handler(): Promise<MaintenanceMode> {
        return (await repo()).maintenance();
      },
    },
    'mode.set': {
      params: { enabled: 'boolean', reason: { type: 'string', optional: true, max: 500 } },
      async handler(ctx: RagmeshContext<{ enabled: boolean; reason?: string }>): Promise<MaintenanceMode> {
        const actor = requireAllowed(ctx, 'maintenance.manage');
        const mode: MaintenanceMode = ctx.params.enabled
          ? { enabled: true, reason: ctx.params.reason ?? null, since: new Date().toISOString(), by: actor }
          : { enabled: false, reason: null, since: null, by: actor };
        const db = await runtime.stores.db();
        await db.knex.transaction(async (trx) => {
          await new SystemRepository(db.knex).setMaintenance(mode, trx);
          await new AuditRepository(db.knex).record(
            null,
            {
              actor,
              action: mode.enabled ? 'maintenance.enter' : 'maintenance.leave',
              details: { reason: mode.reason },
              requestId: currentRequest()?.requestId ?? ctx.requestID ?? null,
            },
            trx,
          );
        });
        await ctx.broadcast(MAINTENANCE_CHANGED_EVENT, mode);
        return mode;
      },
    },
  };
}
