import type { MaintenanceMode } from '../../../lib/repositories/system.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { endpoint, type ApiRouteModule } from './module.ts';

/**
 * Deployment-wide administration: maintenance mode and backups. The work is done by
 * the maintenance service; these routes hand it the caller's principal.
 */
export function adminRoutes(_runtime: Runtime): ApiRouteModule {
  const MODE = { type: 'object', required: ['enabled'], properties: { enabled: { type: 'boolean' }, reason: { type: ['string', 'null'] }, since: { type: ['string', 'null'] } } };
  return {
    endpoints: [
      endpoint({
        method: 'GET',
        path: '/api/v1/admin/maintenance',
        permission: 'maintenance.read',
        summary: 'Whether maintenance (read-only) mode is on',
        response: { schema: MODE },
        action: 'admin.maintenance.get',
        handler: (ctx: RagmeshContext): Promise<MaintenanceMode> => ctx.call('maintenance.mode.get'),
      }),
      endpoint<{ enabled: boolean; reason?: string }>({
        method: 'PUT',
        path: '/api/v1/admin/maintenance',
        permission: 'maintenance.manage',
        summary: 'Turn maintenance mode on or off (audited)',
        // Leaving maintenance mode must work while it is on.
        duringMaintenance: true,
        params: { enabled: 'boolean', reason: { type: 'string', optional: true, max: 500 } },
        response: { schema: MODE },
        action: 'admin.maintenance.set',
        handler: (ctx): Promise<MaintenanceMode> => ctx.call('maintenance.mode.set', ctx.params),
      }),
      endpoint({
        method: 'GET',
        path: '/api/v1/admin/backups',
        permission: 'backups.manage',
        summary: 'The backups, newest first',
        response: { schema: { type: 'object' } },
        action: 'admin.backups.list',
        handler: (ctx: RagmeshContext) => ctx.call('maintenance.backup.list'),
      }),
      endpoint({
        method: 'POST',
        path: '/api/v1/admin/sweeps',
        permission: 'sweeps.run',
        summary: 'Run the orphan and retention sweepers now; counts of what each removed',
        response: { schema: { type: 'object' } },
        action: 'admin.sweeps.run',
        handler: (ctx: RagmeshContext) => ctx.call('maintenance.sweep.run', {}, { timeout: 0 }),
      }),
      endpoint({
        method: 'POST',
        path: '/api/v1/admin/backups',
        permission: 'backups.manage',
        summary: 'Take a backup now (database, objects, vectors), checksummed',
        response: { status: 201, schema: { type: 'object' } },
        action: 'admin.backups.create',
        async handler(ctx: RagmeshContext) {
          // A backup takes as long as the data is big: no call timeout.
          return ctx.call('maintenance.backup.create', {}, { timeout: 0 });
        },
      }),
    ],
  };
}
