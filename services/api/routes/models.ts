import { EventEmitter } from 'node:events';
import { can, type Action } from '../../../lib/auth/permissions.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { REINDEX_PROGRESS_EVENT, type ReindexView } from '../../maintenance/models.actions.ts';
import { openSse } from '../sse.ts';
import { endpoint, type ApiRouteModule, type Endpoint } from './module.ts';

/** Model state (a tenant_admin sees its own tenant's re-index); every change is the admin's. */
const ADMINS: Action = 'models.manage';
const READERS: Action = 'models.read';
const name = { type: 'string', min: 1, max: 128, pattern: /^[A-Za-z0-9._=+@,-]+$/ } as const;

/**
 * /api/v1/admin/models: the operator's model lifecycle over HTTP — what
 * `npm run models` calls. Every action forwards to the maintenance service with the
 * caller's principal, so the maintenance service decides and audits in one place.
 * Writes need admin; a tenant_admin may read (its own tenant's re-index and coverage).
 */
export function modelRoutes(_runtime: Runtime): ApiRouteModule {
  /** Re-index progress of the whole mesh, fanned out to this node's SSE streams. */
  const progress = new EventEmitter().setMaxListeners(0);

  const forward = (action: string, pick: (p: Record<string, unknown>) => Record<string, unknown> = (p) => p) => ({
    action: `models.${action}`,
    handler(ctx: RagmeshContext<Record<string, unknown>>) {
      return ctx.call(`maintenance.models.${action}`, pick(ctx.params));
    },
  });
  const OBJECT = { schema: { type: 'object' } };
  const route = (method: Endpoint['method'], path: string, summary: string, permission: Action, rest: Partial<Endpoint> & ReturnType<typeof forward>): Endpoint =>
    endpoint({ method, path: `/api/v1/admin/models${path}`, summary, permission, response: OBJECT, ...rest } as Endpoint);
  const tenant = { type: 'string', min: 1, max: 64, optional: true } as const;

  return {
    endpoints: [
      route('GET', '', 'Every model alias with its versions', READERS, {
        response: { schema: { type: 'array', items: { type: 'object', required: ['alias', 'kind', 'versions'], properties: { alias: { type: 'string' }, kind: { type: 'string' }, versions: { type: 'array' } } } } },
        ...forward('list', () => ({})),
      }),
      route('GET', '/status', 'What each emb node serves, per alias', READERS, { params: { alias: { ...name, optional: true } }, ...forward('status') }),
      endpoint({
        method: 'GET',
        path: '/api/v1/admin/models/events',
        permission: 'models.read',
        summary: 'SSE: re-index progress (a tenant_admin sees its own tenant)',
        params: { alias: { ...name, optional: true } },
        response: { contentType: 'text/event-stream' },
        streamCap: 'events',
        stream: async ({ req, res, ctx, params }: { req: Parameters<typeof openSse>[0]; res: Parameters<typeof openSse>[1]; ctx: RagmeshContext; params: { alias?: string } }) => {
          // Deployment-wide readers see every tenant's re-index; a tenant_admin its own.
          const own = can(ctx.meta.auth, 'deployment.read') ? null : ctx.meta.auth!.tenantId;
          const alias = params.alias;
          const sse = openSse(req, res);
          sse.send('meta', { requestId: ctx.requestID ?? null });
          const listener = (view: ReindexView) => {
            if ((own && view.tenantId !== own) || (alias && view.alias !== alias)) return;
            sse.send('progress', view);
          };
          progress.on('progress', listener);
          void sse.closed.then(() => progress.off('progress', listener));
        },
      }),
      route('POST', '', 'Register a model version from its manifest', ADMINS, { params: { manifest: { type: 'object' } }, errors: ['INVALID_MANIFEST', 'MODEL_VERSION_EXISTS'], ...forward('register') }),
      route('POST', '/:alias/switch', 'Make a version the active one of its alias (warmed first)', ADMINS, { params: { alias: name, version: name, force: { type: 'boolean', optional: true, convert: true } }, errors: ['MODEL_VERSION_NOT_FOUND'], ...forward('switch') }),
      route('POST', '/:alias/rollback', 'Switch back to the previous version', ADMINS, { params: { alias: name }, errors: ['MODEL_ALIAS_NOT_FOUND', 'NOTHING_TO_ROLL_BACK'], ...forward('rollback') }),
      route('POST', '/:alias/compare', 'Compare two versions on sample queries (changes nothing)', ADMINS, {
        // Comparing reads both collections and changes nothing: allowed in maintenance mode.
        duringMaintenance: true,
        params: {
          alias: name,
          v1: name,
          v2: name,
          tenantId: { type: 'string', min: 1, max: 64 },
          queries: { type: 'array', items: { type: 'string', min: 1, max: 2000 }, optional: true, max: 200 },
          sample: { type: 'number', integer: true, min: 1, max: 200, optional: true, convert: true },
        },
        ...forward('compare'),
      }),
      route('POST', '/:alias/:version/reindex', 'Re-index documents with a version (a job per tenant)', ADMINS, { params: { alias: name, version: name, tenantId: tenant }, errors: ['MODEL_VERSION_NOT_FOUND'], ...forward('reindex') }),
      route('POST', '/:alias/:version/reindex/cancel', 'Cancel a re-index', ADMINS, { params: { alias: name, version: name, tenantId: tenant }, ...forward('reindexCancel') }),
      route('GET', '/:alias/:version/coverage', 'How many documents a version has indexed', READERS, { params: { alias: name, version: name }, ...forward('coverage') }),
      route('DELETE', '/:alias/:version', 'Delete a version that is not active', ADMINS, { params: { alias: name, version: name }, errors: ['MODEL_VERSION_NOT_FOUND'], ...forward('delete') }),
    ],

    events: {
      [REINDEX_PROGRESS_EVENT]: {
        handler(ctx: RagmeshContext<ReindexView>) {
          progress.emit('progress', ctx.params);
        },
      },
    },
  };
}
