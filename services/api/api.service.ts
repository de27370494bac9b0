import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServiceBroker, ServiceSchema } from 'moleculer';
import ApiGateway from 'moleculer-web';
import type { Principal } from '../../lib/auth/jwt.ts';
import { ApiKeyAuthenticator } from '../../lib/auth/api-keys.ts';
import { CREDENTIALS_CHANGED_EVENT, CredentialVerifier, type CredentialChange } from '../../lib/auth/credentials.ts';
import { RateLimiter } from '../../lib/auth/rate-limit.ts';
import { streamSlots } from '../../lib/auth/stream-slots.ts';
import { AccessTokens, tokenSettings } from '../../lib/auth/tokens.ts';
import { degradable } from '../../lib/adapters/kv/degradable.ts';
import { accessRoutes } from './routes/access.ts';
import { appError } from '../../lib/errors.ts';
import { instrumentHttpServer } from '../../lib/metrics/http.ts';
import { registerJobGauges } from '../../lib/metrics/jobs.ts';
import { buildInfo } from '../../lib/runtime/build-info.ts';
import { readinessAction, type CallMeta, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';
import { tenantScope } from '../../lib/ports/tenant-scope.ts';
import { errorBody } from './error-body.ts';
import { MaintenanceGate } from './maintenance-gate.ts';
import { MAINTENANCE_CHANGED_EVENT } from '../maintenance/mode.actions.ts';
import type { MaintenanceMode } from '../../lib/repositories/system.ts';
import { apiRouteModules } from './routes/index.ts';
import { buildGateway, routeKey } from './gateway.ts';
import { healthEndpoints } from './routes/health.ts';
import type { ApiRouteModule, Endpoint, GatewayRequest } from './routes/module.ts';

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

/** Whether the request carries a body at all (a POST with none is fine on any route). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/** Whether any string (key or value) in a parsed JSON body holds U+0000, which PostgreSQL text refuses. Iterative: bodies may nest deeply. */
function holdsNul(body: unknown): boolean {
  const stack: unknown[] = [body];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return true;
    } else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key.includes('\u0000')) return true;
        stack.push(inner);
      }
    }
  }
  return false;
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
    const { tenants } = await this.runtime.stores.repos();
    await tenants.recordMember(tenantScope(principal.tenantId), principal.userId, principal.roles);
    if (this.seen.size > 100_000) this.seen.clear();
    this.seen.add(key);
  }
}

const defaultErrorHandler = (ApiGateway as unknown as { methods: { errorHandler(this: unknown, req: GatewayRequest, res: ServerResponse, err: Error): void } }).methods.errorHandler;

/** When authenticate read the clock for a request: the rate limit counts the hit at that time. */
const CHECKED_AT = Symbol('ragmesh.checkedAt');
type CheckedRequest = GatewayRequest & { [CHECKED_AT]?: number };

/** A client-sent X-Request-ID is kept only if it is short and plain, so it is safe in logs. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * The gateway: REST under /api/v1, health and version at the root. It verifies the
 * JWT and puts the principal into ctx.meta.auth, which Moleculer carries to every
 * service the request reaches. Endpoints live in route modules (./routes/), each
 * naming its action in the permission table (lib/auth/permissions.ts).
 */
export default function apiService(runtime: Runtime): ServiceSchema {
  const { config } = runtime;
  let tokens: AccessTokens | null = null;
  let limiter: RateLimiter | null = null;
  let credentials: CredentialVerifier | null = null;
  const modules = [...apiRouteModules(runtime), accessRoutes(runtime, () => tokens, (change) => credentials?.forget(change))];
  const apiKeys = new ApiKeyAuthenticator(async () => (await runtime.stores.db()).knex);
  // HS256 stays for existing setups: JWT_SECRET, or the embedded profile's own secret file.
  const hsSecret = config.profile === 'mesh' ? config.auth.jwtSecret : runtime.jwtSecret || null;
  let broker: ServiceBroker | null = null;
  const endpoints: Endpoint[] = [...healthEndpoints(runtime, () => maintenance, () => endpoints), ...modules.flatMap((m) => m.endpoints)];
  const slots = streamSlots(runtime);
  const gateway = buildGateway(endpoints, () => broker!, true, () => slots);
  const byKey = new Map(endpoints.map((e) => [routeKey(e.method, e.path), e]));
  // The declaration behind each of moleculer-web's alias objects, found once: building and
  // hashing the `METHOD /path` key on every request was part of what the checks cost.
  const byAlias = new WeakMap<object, Endpoint | undefined>();
  const declaredOf = (method: string, alias: { method: string; fullPath: string } | undefined): Endpoint | undefined => {
    // An alias answers one method (the gateway declares no catch-all), so the alias names the declaration.
    if (!alias || alias.method !== method) return byKey.get(routeKey(method, alias?.fullPath ?? ''));
    if (byAlias.has(alias)) return byAlias.get(alias);
    const declared = byKey.get(routeKey(method, alias.fullPath));
    byAlias.set(alias, declared);
    return declared;
  };
  const quiet = new Set(endpoints.filter((e) => e.quiet).map((e) => routeKey(e.method, e.path)));
  const members = new KnownMembers(runtime);
  const maintenance: MaintenanceGate = new MaintenanceGate(runtime, gateway.openInMaintenance);
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
      routes: gateway.routes,
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
      readiness: readinessAction('api', runtime),
      ...gateway.actions,
    },

    events: {
      ...mergedEvents(modules),
      // A key revoked or a user's roles changed on any replica: cached API keys of it go at once.
      [CREDENTIALS_CHANGED_EVENT]: {
        handler: (ctx: RagmeshContext<CredentialChange>) => void credentials?.forget(ctx.params),
      },
      [MAINTENANCE_CHANGED_EVENT]: {
        handler: (ctx: RagmeshContext<MaintenanceMode>) => maintenance.changed(ctx.params),
      },
    },

    created() {
      broker = (this as unknown as { broker: ServiceBroker }).broker;
      const server = (this as unknown as { server?: Server }).server;
      // Requests Node refuses before any route sees them (header floods, unparsable
      // HTTP) get the one error shape too, instead of Node's empty 400/431.
      server?.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
        if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') return void socket.destroy();
        const error = err.code === 'HPE_HEADER_OVERFLOW' ? appError('HEADERS_TOO_LARGE', 'The request headers are too large') : appError('BAD_REQUEST', 'The request is not valid HTTP');
        const { status, body } = errorBody(error, undefined);
        const payload = JSON.stringify(body);
        socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`);
      });
      if (runtime.metrics && server) {
        instrumentHttpServer(server, runtime.metrics);
        registerJobGauges(runtime.metrics, runtime.stores);
      }
    },

    async started() {
      tokens = await AccessTokens.open(tokenSettings(config, hsSecret));
      credentials = new CredentialVerifier(tokens, apiKeys, { maxEntries: config.auth.cacheEntries, apiKeyTtlMs: config.auth.apiKeyCacheMs }, async (principal, kind) => {
        // An API key's roles are the key's: only tokens (the identity provider's word) record roles.
        if (kind === 'jwt') await members.record(principal);
      });
      // Without Redis the limits are counted in this process only (logged and counted as degraded).
      limiter = new RateLimiter(degradable(await runtime.stores.kv(), 'rate-limit'), config.rateLimits);
      for (const m of modules) await m.started?.();
    },

    async stopped() {
      for (const m of modules) await m.stopped?.();
    },

    methods: {
      /**
       * moleculer-web's error handling, without its error line and stack for a 503: a
       * refusal that says when to come back (OVERLOADED, MAINTENANCE, a dependency down)
       * is the system working as designed, logged once as a warning where it was decided
       * (lib/runtime/call-logging-middleware.ts) and in the access log. Under overload
       * the default printed a stack per refused search.
       */
      errorHandler(this: { sendError(req: GatewayRequest, res: ServerResponse, err: unknown): void }, req: GatewayRequest, res: ServerResponse, err: Error) {
        if (errorBody(err).status === 503) return this.sendError(req, res, err);
        return defaultErrorHandler.call(this, req, res, err);
      },

      /** A JWT (EdDSA with kid, or HS256 of existing setups) or an API key, as a Bearer token. */
      async authenticate(ctx: RagmeshContext, _route: unknown, req: GatewayRequest): Promise<Principal> {
        // A header whose credential is in the cache is the very string that passed bearerToken's
        // checks when it was first seen: no second look, nor a promise (bench:auth).
        const header = req.headers.authorization;
        // One clock read for the checks of this request, the rate limit's included (see authorize).
        const now = ((req as CheckedRequest)[CHECKED_AT] = Date.now());
        const principal = (header !== undefined ? credentials!.cachedBearer(header, now) : undefined) ?? (await credentials!.authenticate(bearerToken(req)));
        (ctx.meta as CallMeta).auth = principal;
        return principal;
      },

      async authorize(ctx: RagmeshContext, _route: unknown, req: GatewayRequest, _res: unknown, alias?: { method: string; fullPath: string }): Promise<void> {
        const declared = declaredOf(req.method ?? 'GET', alias);
        // A body that is not JSON would be ignored and the route run as if sent none.
        if (!declared?.body && hasBody(req) && !/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
          throw appError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON (Content-Type: application/json)');
        }
        // A JSON body is an object of named parameters; an array or a bare value would pass as "no parameters".
        if (req.body !== undefined && !declared?.body && (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body))) {
          throw appError('BAD_REQUEST', 'The JSON body must be an object');
        }
        if (req.body !== undefined && !declared?.body && holdsNul(req.body)) throw appError('BAD_REQUEST', 'Strings in the body may not contain NUL characters');
        // The permission table decides (lib/auth/permissions.ts), then the action's rate class
        // is counted; public routes (health, JWKS, signed upload URLs) have no caller to check.
        if (!declared?.public) {
          // Returns a promise only when the count needs a round trip (Redis); the memory store answers at once.
          const counting = limiter!.check(ctx.meta.auth, declared!.permission!, (req as CheckedRequest)[CHECKED_AT]);
          if (counting) await counting;
        }
        const gate = maintenance.check(req.method ?? 'GET', alias?.fullPath ?? req.url ?? '');
        if (gate) await gate;
      },

      /** One structured access-log line per request instead of moleculer-web's coloured text. */
      logResponse(this: { logger: { info: (o: object, m: string) => void } }, req: GatewayRequest, res: ServerResponse) {
        if (quiet.has(routeKey(req.method ?? 'GET', req.$alias?.fullPath ?? ''))) return;
        const [s, ns] = process.hrtime(req.$startTime ?? process.hrtime());
        this.logger.info(
          { request_id: res.getHeader('X-Request-ID'), method: req.method, url: loggedUrl(req.originalUrl ?? req.url ?? ''), status: res.statusCode, ms: Math.round((s * 1e3 + ns / 1e6) * 10) / 10 },
          'http request',
        );
      },
    },
  };
}

/** Event handlers of every route module; two modules handling the same event would replace each other: refused at boot. */
function mergedEvents(modules: ApiRouteModule[]): NonNullable<ServiceSchema['events']> {
  const out: Record<string, unknown> = {};
  for (const module of modules) {
    for (const [key, value] of Object.entries(module.events ?? {})) {
      if (key in out) throw new Error(`Two api route modules handle the event "${key}"`);
      out[key] = value;
    }
  }
  return out as NonNullable<ServiceSchema['events']>;
}
