import type { Principal } from '../../../lib/auth/jwt.ts';
import { SERVICE_NAMES } from '../../../lib/config/env.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import type { RagmeshContext, Readiness, Runtime } from '../../../lib/runtime/service-kit.ts';
import { endpoint, type ApiRouteModule } from './module.ts';

/** Who am I, and is the whole mesh well. */
export function systemRoutes(runtime: Runtime): ApiRouteModule {
  return {
    endpoints: [
      /** Who the token says the caller is; records the tenant, user and roles on the way. */
      endpoint({
        method: 'GET',
        path: '/api/v1/me',
        permission: 'me.read',
        summary: 'The caller as the token says: tenant, user, roles, and since when a member',
        response: { schema: { type: 'object', required: ['tenantId', 'userId', 'roles', 'memberSince'], properties: { tenantId: { type: 'string' }, userId: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } }, memberSince: { type: 'string', format: 'date-time' } } } },
        action: 'me',
        async handler(ctx: RagmeshContext): Promise<Principal & { memberSince: string }> {
          const auth = ctx.meta.auth!;
          const { tenants } = await runtime.stores.repos();
          const membership = await tenants.recordMember(tenantScope(auth.tenantId), auth.userId, auth.roles);
          return { ...auth, memberSince: membership.memberSince.toISOString() };
        },
      }),

      /** Readiness of every service instance in the mesh, asked over the transporter. */
      endpoint({
        method: 'GET',
        path: '/api/v1/status',
        permission: 'status.read',
        summary: 'Readiness of every service instance of the mesh (admins)',
        response: { schema: { type: 'object', required: ['ready', 'missing', 'services'], properties: { ready: { type: 'boolean' }, missing: { type: 'array', items: { type: 'string' } }, services: { type: 'array', items: { type: 'object' } } } } },
        action: 'status',
        async handler(ctx: RagmeshContext) {
          const instances = (ctx.broker.registry.getServiceList({ onlyAvailable: true }) as Array<{ name: string; nodeID: string }>)
            .filter((s) => (SERVICE_NAMES as readonly string[]).includes(s.name))
            .sort((a, b) => a.name.localeCompare(b.name) || a.nodeID.localeCompare(b.nodeID));
          const services = await Promise.all(
            instances.map(async ({ name, nodeID }) => {
              try {
                return (await ctx.call(`${name}.readiness`, {}, { nodeID, timeout: 5000 })) as Readiness;
              } catch (err) {
                return { service: name, nodeId: nodeID, ready: false, checks: {}, error: (err as Error).message };
              }
            }),
          );
          const missing = SERVICE_NAMES.filter((name) => !instances.some((s) => s.name === name));
          const maintenance = await (await runtime.stores.repos()).system.maintenance();
          return { ready: missing.length === 0 && services.every((s) => s.ready), missing, maintenance, services };
        },
      }),
    ],
  };
}
