import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceSchema } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { verifyAccessToken, type Principal, type Role } from '../../lib/auth/jwt.ts';
import { forbidden, unauthorized } from '../../lib/errors.ts';
import { buildInfo } from '../../lib/runtime/build-info.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';
import { errorBody } from './error-body.ts';
import { API_ROUTE_MODULES } from './routes/index.ts';

/** A client-sent X-Request-ID is kept only if it is short and plain, so it is safe in logs. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

interface GatewayRequest extends IncomingMessage {
  $action?: { name: string };
  $startTime?: [number, number];
  originalUrl?: string;
  $ctx?: RagmeshContext;
  $route?: { logging?: boolean };
}

/**
 * The gateway: REST under /api/v1, health and version at the root. It verifies the
 * JWT and puts the principal into ctx.meta.auth, which Moleculer carries to every
 * service the request reaches. Endpoints live in route modules (./routes/), each
 * saying which roles its actions need.
 */
export default function apiService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  const modules = API_ROUTE_MODULES.map((factory) => factory(runtime));
  /** Who may call an action through the gateway; actions not listed need only a valid token. */
  const actionRoles: Record<string, Role[]> = Object.assign({}, ...modules.map((m) => m.roles ?? {}));
  return {
    name: 'api',
    mixins: [ApiGateway],
    // moleculer-web's settings are not part of Moleculer's ServiceSettingSchema type.
    settings: {
      port: config.http.port,
      ip: config.http.host,
      logRequest: 'debug',
      logRequestParams: null,
      logResponse: 'info',
      rootCallOptions(options: { requestID?: string }, req: IncomingMessage) {
        const given = options.requestID;
        options.requestID = typeof given === 'string' && CLIENT_REQUEST_ID.test(given) ? given : randomUUID();
        void req;
      },
      routes: [
        {
          name: 'health',
          path: '/',
          logging: false,
          mappingPolicy: 'restrict',
          authentication: false,
          aliases: {
            'GET healthz': 'api.healthz',
            'GET readyz': 'api.readyz',
            'GET api/version': 'api.version',
          },
        },
        {
          name: 'v1',
          path: '/api/v1',
          mappingPolicy: 'restrict',
          authentication: true,
          authorization: true,
          bodyParsers: { json: { limit: '1mb' }, urlencoded: false },
          aliases: Object.assign({}, ...modules.map((m) => m.aliases ?? {})),
        },
        ...modules.flatMap((m) => m.routes ?? []),
      ],
      onError(
        this: { logger: { error: (...a: unknown[]) => void }; logResponse: (req: GatewayRequest, res: ServerResponse) => void },
        req: GatewayRequest,
        res: ServerResponse,
        err: Error,
      ) {
        const { status, body, retryAfterSeconds } = errorBody(err, res.getHeader('X-Request-ID') as string | undefined);
        if (status >= 500 && status !== 503) this.logger.error({ err }, 'request failed');
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        if (retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(retryAfterSeconds));
        res.writeHead(status);
        res.end(JSON.stringify(body));
        this.logResponse(req, res);
      },
    } as ServiceSchema['settings'],

    actions: {
      healthz: {
        handler: () => ({ status: 'ok' }),
      },

      /** Ready when this node's own dependencies answer; 503 otherwise, so a load balancer skips it. */
      readyz: {
        async handler(ctx: RagmeshContext): Promise<Readiness> {
          const readiness = (await ctx.call('api.readiness', {}, { nodeID: ctx.broker.nodeID })) as Readiness;
          if (!readiness.ready) ctx.meta.$statusCode = 503;
          return readiness;
        },
      },

      readiness: readinessAction('api', runtime),

      version: {
        handler: () => buildInfo(config),
      },

      ...Object.assign({}, ...modules.map((m) => m.actions ?? {})),
    },

    async started() {
      for (const m of modules) await m.started?.();
    },

    async stopped() {
      for (const m of modules) await m.stopped?.();
    },

    methods: {
      ...Object.assign({}, ...modules.map((m) => m.methods ?? {})),

      async authenticate(ctx: RagmeshContext, _route: unknown, req: GatewayRequest): Promise<Principal> {
        const header = req.headers.authorization;
        if (!header) throw unauthorized('MISSING_TOKEN', 'Send an access token: Authorization: Bearer <token>');
        const match = /^Bearer ([A-Za-z0-9._-]+)$/.exec(header);
        if (!match) throw unauthorized('INVALID_TOKEN', 'The Authorization header must be "Bearer <token>"');
        const principal = await verifyAccessToken(match[1]!, runtime.jwtSecret, config.auth.issuer);
        (ctx.meta as CallMeta).auth = principal;
        return principal;
      },

      authorize(ctx: RagmeshContext, _route: unknown, req: GatewayRequest): void {
        const needed = actionRoles[req.$action?.name ?? ''];
        if (!needed?.length) return;
        const held = ctx.meta.auth?.roles ?? [];
        if (!needed.some((role) => held.includes(role))) {
          throw forbidden('FORBIDDEN', `This needs one of the roles: ${needed.join(', ')}`);
        }
      },

      /** One structured access-log line per request instead of moleculer-web's coloured text. */
      logResponse(this: { logger: { info: (o: object, m: string) => void } }, req: GatewayRequest, res: ServerResponse) {
        if (req.$route && req.$route.logging === false) return;
        const [s, ns] = process.hrtime(req.$startTime ?? process.hrtime());
        this.logger.info(
          { request_id: res.getHeader('X-Request-ID'), method: req.method, url: req.originalUrl ?? req.url, status: res.statusCode, ms: Math.round((s * 1e3 + ns / 1e6) * 10) / 10 },
          'http request',
        );
      },
    },
  };
}
