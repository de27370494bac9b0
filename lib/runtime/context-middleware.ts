import type { Context, Middleware } from 'moleculer';
import { requestContext } from '../logging.ts';
import type { CallMeta } from './service-kit.ts';

/**
 * Runs every local action inside the request's logging context. Moleculer carries
 * ctx.requestID and ctx.meta across the transporter, so the remote side re-enters
 * the same context and its log lines carry the same request_id.
 */
export const requestContextMiddleware: Middleware = {
  name: 'RequestContext',
  localAction(next) {
    const handler = next as (ctx: Context) => Promise<unknown>;
    return (ctx: Context) => {
      const auth = (ctx.meta as CallMeta).auth;
      const store = {
        requestId: ctx.requestID ?? ctx.id,
        tenantId: auth?.tenantId,
        userId: auth?.userId,
      };
      return requestContext.run(store, () => handler(ctx));
    };
  },
};
