import type { MaintenanceMode } from '../../../lib/repositories/system.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import type { ApiRouteModule } from './module.ts';

/**
 * Deployment-wide administration: maintenance mode and backups. The work is done by
 * the maintenance service; these routes hand it the caller's principal.
 */
export function adminRoutes(_runtime: Runtime): ApiRouteModule {
  return {
    aliases: {
      'GET admin/maintenance': 'api.admin.maintenance.get',
      'PUT admin/maintenance': 'api.admin.maintenance.set',
      'GET admin/backups': 'api.admin.backups.list',
      'POST admin/backups': 'api.admin.backups.create',
      'POST admin/sweeps': 'api.admin.sweeps.run',
    },
    // Leaving maintenance mode must work while it is on.
    reads: ['PUT admin/maintenance'],
    roles: {
      'api.admin.maintenance.get': ['admin', 'tenant_admin'],
      'api.admin.maintenance.set': ['admin'],
      'api.admin.backups.list': ['admin'],
      'api.admin.backups.create': ['admin'],
      'api.admin.sweeps.run': ['admin'],
    },
    actions: {
      'admin.maintenance.get': {
        handler: (ctx: RagmeshContext): Promise<MaintenanceMode> => ctx.call('maintenance.mode.get'),
      },
      'admin.maintenance.set': {
        params: { enabled: 'boolean', reason: { type: 'string', optional: true, max: 500 } },
        handler: (ctx: RagmeshContext<{ enabled: boolean; reason?: string }>): Promise<MaintenanceMode> => ctx.call('maintenance.mode.set', ctx.params),
      },
      'admin.backups.list': {
        handler: (ctx: RagmeshContext) => ctx.call('maintenance.backup.list'),
      },
      'admin.sweeps.run': {
        handler: (ctx: RagmeshContext) => ctx.call('maintenance.sweep.run', {}, { timeout: 0 }),
      },
      'admin.backups.create': {
        async handler(ctx: RagmeshContext) {
          // A backup takes as long as the data is big: no call timeout.
          const result = await ctx.call('maintenance.backup.create', {}, { timeout: 0 });
          ctx.meta.$statusCode = 201;
          return result;
        },
      },
    },
  };
}
