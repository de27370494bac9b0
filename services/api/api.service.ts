import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { ServiceSchema } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { verifyAccessToken, type Principal, type Role } from '../../lib/auth/jwt.ts';
import { appError } from '../../lib/errors.ts';
import { instrumentHttpServer } from '../../lib/metrics/http.ts';
import { registerJobGauges } from '../../lib/metrics/jobs.ts';
import { buildInfo } from '../../lib/runtime/build-info.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';
import { tenantScope } from '../../lib/ports/tenant-scope.ts';
import { TenantsRepository } from '../../lib/repositories/tenants.ts';
import { errorBody } from './error-body.ts';
import { MaintenanceGate } from './maintenance-gate.ts';
import { MAINTENANCE_CHANGED_EVENT } from '../maintenance/mode.actions.ts';
import type { MaintenanceMode } from '../../lib/repositories/system.ts';
import { API_ROUTE_MODULES } from './routes/index.ts';
import type { ApiRouteModule } from './routes/module.ts';

/**
 * The token of a request: the Authorization header, or — for GET only, because
 * EventSource cannot send headers — an `access_token` query parameter (the access
 * log redacts it).
 */
function bearerToken(req: IncomingMessage): string {
  const header = req.headers.authorization;
  if (header) {
    const match = /^Bearer ([A-Za-z0-9._-]+)$/.exec(header);
    if (!match) throw appError('INVALID_TOKEN', 'The Authorization header must be "Bearer <token>"');
    return match[1]!;
  }
  if (req.method === 'GET') {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('access_token');
    if (token && /^[A-Za-z0-9._-]+$/.test(token)) return token;
  }
  throw appError('MISSING_TOKEN', 'Send an access token: Authorization: Bearer <token>');
}

/** URLs as logged: query tokens replaced, so access logs never hold credentials. */
function loggedUrl(url: string): string {
  return url.replace(/([?&](?:access_token|token)=)[^&]*/g, '$1[redacted]');
}

/**
 * Tenants and users exist because a verified token names them: the first request of a
 * (tenant, user, roles) this process sees records them, so tenant-owned rows always
 * have their tenant. Later requests cost a Set lookup.
 */
class KnownMembers {
  private readonly seen = new Set<string>();
  constructor(private readonly runtime: Runtime) {}

  async record(principal: Principal): Promise<void> {
    const key = `${principal.tenantId}\u0000${principal.userId}\u0000${principal.roles.join(',')}`;
    if (this.seen.has(key)) return;
    const { knex } = await this.runtime.stores.db();
    await new TenantsRepository(knex).recordMember(tenantScope(principal.tenantId), principal.userId, principal.roles);
    if (this.seen.size > 100_000) this.seen.clear();
    this.seen.add(key);
  }
}

type MergedPart = 'roles' | 'aliases' | 'actions' | 'events' | 'methods';

/**
 * One part of every route module, as one object. Two modules claiming the same alias,
 * action, event or method would silently replace each other: refuse it at boot.
 */
function merged<K extends MergedPart>(modules: ApiRouteModule[], part: K): NonNullable<ApiRouteModule[K]> {
  const out: Record<string, unknown> = {};
  for (const module of modules) {
    for (const [key, value] of Object.entries(module[part] ?? {})) {
      if (key in out) throw new Error(`Two api route modules define the same ${part.replace(/s$/, '')} "${key}"`);
      out[key] = value;
    }
  }
  return out as NonNullable<ApiRouteModule[K]>;
}

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
  const actionRoles: Record<string, Role[]> = merged(modules, 'roles');
  const members = new KnownMembers(runtime);
  const maintenance = new MaintenanceGate(
    runtime,
    new Set(modules.flatMap((m) => m.reads ?? []).map((r) => (/^[A-Z]+ \//.test(r) ? r : r.replace(' ', ' /api/v1/')))),
  );
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
            // Prometheus scrapes each replica here; nginx does not pass it from outside.
            'GET metrics': 'api.metrics',
          },
        },
        {
          name: 'v1',
          path: '/api/v1',
          mappingPolicy: 'restrict',
          authentication: true,
          authorization: true,
          bodyParsers: { json: { limit: '1mb' }, urlencoded: false },
          aliases: merged(modules, 'aliases'),
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
        handler: async () => ({ ...buildInfo(config), maintenance: await maintenance.current() }),
      },

      metrics: {
        async handler(ctx: RagmeshContext): Promise<string> {
          if (!runtime.metrics) throw appError('ROUTE_NOT_FOUND', 'This process exports no metrics');
          const { contentType, body } = await runtime.metrics.render();
          ctx.meta.$responseType = contentType;
          return body;
        },
      },

      ...merged(modules, 'actions'),
    },

    events: {
      ...merged(modules, 'events'),
      [MAINTENANCE_CHANGED_EVENT]: {
        handler: (ctx: RagmeshContext<MaintenanceMode>) => maintenance.changed(ctx.params),
      },
    },

    created() {
      const server = (this as unknown as { server?: Server }).server;
      if (runtime.metrics && server) {
        instrumentHttpServer(server, runtime.metrics);
        registerJobGauges(runtime.metrics, runtime.stores);
      }
    },

    async started() {
      for (const m of modules) await m.started?.();
    },

    async stopped() {
      for (const m of modules) await m.stopped?.();
    },

    methods: {
      ...merged(modules, 'methods'),

      async authenticate(ctx: RagmeshContext, _route: unknown, req: GatewayRequest): Promise<Principal> {
        const principal = await verifyAccessToken(bearerToken(req), runtime.jwtSecret, config.auth.issuer);
        (ctx.meta as CallMeta).auth = principal;
        await members.record(principal);
        return principal;
      },

      async authorize(ctx: RagmeshContext, _route: unknown, req: GatewayRequest, _res: unknown, alias?: { method: string; fullPath: string }): Promise<void> {
        const needed = actionRoles[req.$action?.name ?? ''];
        const held = ctx.meta.auth?.roles ?? [];
        if (needed?.length && !needed.some((role) => held.includes(role))) {
          throw appError('FORBIDDEN', `This needs one of the roles: ${needed.join(', ')}`);
        }
        await maintenance.check(req.method ?? 'GET', alias?.fullPath ?? req.url ?? '');
      },

      /** One structured access-log line per request instead of moleculer-web's coloured text. */
      logResponse(this: { logger: { info: (o: object, m: string) => void } }, req: GatewayRequest, res: ServerResponse) {
        if (req.$route && req.$route.logging === false) return;
        const [s, ns] = process.hrtime(req.$startTime ?? process.hrtime());
        this.logger.info(
          { request_id: res.getHeader('X-Request-ID'), method: req.method, url: loggedUrl(req.originalUrl ?? req.url ?? ''), status: res.statusCode, ms: Math.round((s * 1e3 + ns / 1e6) * 10) / 10 },
          'http request',
        );
      },
    },
  };
}
