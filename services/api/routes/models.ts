import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Role } from '../../../lib/auth/jwt.ts';
import { appError } from '../../../lib/errors.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { REINDEX_PROGRESS_EVENT, type ReindexView } from '../../maintenance/models.actions.ts';
import { openSse } from '../sse.ts';
import type { ApiRouteModule } from './module.ts';

const ADMINS: Role[] = ['admin'];
const READERS: Role[] = ['admin', 'tenant_admin'];
const name = { type: 'string', min: 1, max: 128, pattern: /^[A-Za-z0-9._=+@,-]+$/ } as const;

interface GatewayReq extends IncomingMessage {
  $ctx: RagmeshContext;
  $params: Record<string, string>;
}

interface GatewayThis {
  sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void;
}

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
    handler(ctx: RagmeshContext<Record<string, unknown>>) {
      return ctx.call(`maintenance.models.${action}`, pick(ctx.params));
    },
  });

  return {
    aliases: {
      'GET admin/models': 'api.models.list',
      'GET admin/models/status': 'api.models.status',
      'GET admin/models/events': function (this: GatewayThis, req: GatewayReq, res: ServerResponse) {
        const auth = req.$ctx.meta.auth;
        const roles = auth?.roles ?? [];
        if (!READERS.some((r) => roles.includes(r))) {
          this.sendError(req, res, appError('FORBIDDEN', `This needs one of the roles: ${READERS.join(', ')}`));
          return;
        }
        const own = roles.includes('admin') ? null : auth!.tenantId;
        const url = new URL(req.url ?? '/', 'http://x');
        const alias = url.searchParams.get('alias');
        const sse = openSse(req, res);
        sse.send('meta', { requestId: req.$ctx.requestID ?? null });
        const listener = (view: ReindexView) => {
          if ((own && view.tenantId !== own) || (alias && view.alias !== alias)) return;
          sse.send('progress', view);
        };
        progress.on('progress', listener);
        void sse.closed.then(() => progress.off('progress', listener));
      },
      'POST admin/models': 'api.models.register',
      'POST admin/models/:alias/switch': 'api.models.switch',
      'POST admin/models/:alias/rollback': 'api.models.rollback',
      'POST admin/models/:alias/compare': 'api.models.compare',
      'POST admin/models/:alias/:version/reindex': 'api.models.reindex',
      'POST admin/models/:alias/:version/reindex/cancel': 'api.models.reindexCancel',
      'GET admin/models/:alias/:version/coverage': 'api.models.coverage',
      'DELETE admin/models/:alias/:version': 'api.models.delete',
    },

    // Comparing reads both collections and changes nothing: allowed in maintenance mode.
    reads: ['POST admin/models/:alias/compare'],
    roles: {
      'api.models.list': READERS,
      'api.models.status': READERS,
      'api.models.coverage': READERS,
      'api.models.register': ADMINS,
      'api.models.switch': ADMINS,
      'api.models.rollback': ADMINS,
      'api.models.compare': ADMINS,
      'api.models.reindex': ADMINS,
      'api.models.reindexCancel': ADMINS,
      'api.models.delete': ADMINS,
    },

    events: {
      [REINDEX_PROGRESS_EVENT]: {
        handler(ctx: RagmeshContext<ReindexView>) {
          progress.emit('progress', ctx.params);
        },
      },
    },

    actions: {
      'models.list': forward('list', () => ({})),
      'models.status': { params: { alias: { ...name, optional: true } }, ...forward('status') },
      'models.register': { params: { manifest: { type: 'object' } }, ...forward('register') },
      'models.switch': { params: { alias: name, version: name, force: { type: 'boolean', optional: true, convert: true } }, ...forward('switch') },
      'models.rollback': { params: { alias: name }, ...forward('rollback') },
      'models.compare': {
        params: {
          alias: name,
          v1: name,
          v2: name,
          tenantId: { type: 'string', min: 1, max: 64 },
          queries: { type: 'array', items: { type: 'string', min: 1, max: 2000 }, optional: true, max: 200 },
          sample: { type: 'number', integer: true, min: 1, max: 200, optional: true, convert: true },
        },
        ...forward('compare'),
      },
      'models.reindex': { params: { alias: name, version: name, tenantId: { type: 'string', min: 1, max: 64, optional: true } }, ...forward('reindex') },
      'models.reindexCancel': { params: { alias: name, version: name, tenantId: { type: 'string', min: 1, max: 64, optional: true } }, ...forward('reindexCancel') },
      'models.coverage': { params: { alias: name, version: name }, ...forward('coverage') },
      'models.delete': { params: { alias: name, version: name }, ...forward('delete') },
    },
  };
}
