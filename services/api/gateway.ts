import { isUtf8 } from 'node:buffer';
import type { ServerResponse } from 'node:http';
import { Errors, type ServiceBroker, type ServiceSchema } from 'moleculer';
import { isAction } from '../../lib/auth/permissions.ts';
import type { StreamSlots } from '../../lib/auth/stream-slots.ts';
import type { RagmeshContext } from '../../lib/runtime/service-kit.ts';
import type { Endpoint, GatewayRequest, ParamsSchema, StreamEndpoint } from './routes/module.ts';

/** Where a route's path puts it: the moleculer-web route that carries it. */
interface Mount {
  name: string;
  path: string;
  authenticated: boolean;
  bodyParsers: Record<string, unknown> | false;
}

/** Most specific first: a path belongs to the first mount whose prefix it starts with. */
/**
 * JSON bodies must be valid UTF-8: the parser would otherwise put U+FFFD in place of the
 * bad bytes and the route would store or search for something nobody sent (400).
 */
function utf8Only(_req: unknown, _res: unknown, body: Buffer): void {
  if (!isUtf8(body)) throw Object.assign(new Error('The body is not valid UTF-8'), { status: 400, type: 'entity.verify.failed' });
}

const MOUNTS: Mount[] = [
  { name: 'v1', path: '/api/v1', authenticated: true, bodyParsers: { json: { limit: '1mb', verify: utf8Only }, urlencoded: false } },
  { name: 'openai', path: '/v1', authenticated: true, bodyParsers: { json: { limit: '2mb', verify: utf8Only }, urlencoded: false } },
];
const PUBLIC: Mount = { name: 'public', path: '/', authenticated: false, bodyParsers: false };

function mountOf(e: Endpoint): Mount {
  if (e.public) return PUBLIC;
  const mount = MOUNTS.find((m) => e.path === m.path || e.path.startsWith(`${m.path}/`));
  if (!mount) throw new Error(`Route ${e.method} ${e.path}: authenticated routes live under ${MOUNTS.map((m) => m.path).join(' or ')}`);
  return mount;
}

/** `METHOD /full/path` as moleculer-web names an alias (its `fullPath`). */
export const routeKey = (method: string, fullPath: string): string => `${method} ${fullPath}`;

/** Writes the one error shape; moleculer-web's own sendError runs the service's onError. */
interface GatewayThis {
  sendError(req: GatewayRequest, res: ServerResponse, err: unknown): void;
  broker: ServiceBroker;
}

const ADMITTED = Promise.resolve();

/**
 * The one wrapper of every streaming route: parameters gathered and validated against
 * the declaration, errors before the first byte in the one error shape, a client gone
 * mid-stream no crash.
 */
function streamAlias(e: StreamEndpoint, check: ((params: unknown) => true | unknown[]) | null, slots: () => StreamSlots | null) {
  return function (this: GatewayThis, req: GatewayRequest, res: ServerResponse) {
    void (async () => {
      req.$endpoint = e;
      const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
      delete query.access_token;
      const body = e.body ? {} : req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
      const params = { ...query, ...body, ...req.$params };
      if (check) {
        const result = check(params);
        if (result !== true) throw new Errors.ValidationError('Parameters validation error!', 'VALIDATION_ERROR', result as object[]);
      }
      let admitted = ADMITTED;
      if (e.streamCap && slots()) {
        // One of the caller's slots of this kind for as long as the response lives (429 TOO_MANY_STREAMS past the cap).
        const auth = req.$ctx.meta.auth!;
        admitted = slots()!.take(e.streamCap, auth.tenantId, auth.userId).then((release) => {
          // A route that failed on its reads meanwhile may have answered already.
          if (res.closed) void release();
          else res.once('close', () => void release());
        });
        if (e.readsBeforeAdmission) admitted.catch(() => undefined);
        else await admitted;
      }
      await e.stream({ req, res, ctx: req.$ctx, broker: this.broker, params, admitted });
    })().catch((err: unknown) => {
      if (!res.headersSent) this.sendError(req, res, err);
      else res.destroy();
    });
  };
}

export interface Gateway {
  /** moleculer-web routes, one per mount. */
  routes: Array<Record<string, unknown>>;
  /** Actions of the api service behind the declared routes (names without `api.`). */
  actions: NonNullable<ServiceSchema['actions']>;
  /** `METHOD /full/path` of the non-GET routes open in maintenance mode. */
  openInMaintenance: Set<string>;
  endpoints: Endpoint[];
}

/**
 * Everything moleculer-web needs, from the declarations alone. Two declarations of the
 * same method and path, or of the same action, would silently replace each other:
 * refused at boot.
 */
export function buildGateway(endpoints: Endpoint[], broker: () => ServiceBroker, authenticate: boolean, slots: () => StreamSlots | null = () => null): Gateway {
  const aliases = new Map<Mount, Record<string, unknown>>();
  const actions: Record<string, unknown> = {};
  const openInMaintenance = new Set<string>();
  const seen = new Set<string>();
  for (const e of endpoints) {
    const key = routeKey(e.method, e.path);
    if (seen.has(key)) throw new Error(`Two api routes declare ${key}`);
    seen.add(key);
    const mount = mountOf(e);
    const relative = mount.path === '/' ? e.path.slice(1) || '/' : e.path.slice(mount.path.length + 1);
    const aliasKey = `${e.method} ${relative}`;
    // Every authenticated route is an action of the permission table; nothing else decides who may call it.
    if (!e.public && !(e.permission && isAction(e.permission))) throw new Error(`Route ${key} names no action of the permission table (lib/auth/permissions.ts)`);
    if (e.duringMaintenance) openInMaintenance.add(key);
    // A long-lived answer with no cap would let one user hold the node's connections and generation slots.
    if (e.stream && !e.public && e.response?.contentType === 'text/event-stream' && !e.streamCap) throw new Error(`Route ${key} streams events but declares no streamCap`);
    let target: unknown;
    if (e.stream) {
      let check: ((params: unknown) => true | unknown[]) | null | undefined;
      const wrapped = streamAlias(e, (params) => {
        // Compiled on first use: the broker's validator exists once the service is created.
        check ??= e.params ? (broker().validator as unknown as { compile(s: ParamsSchema): (p: unknown) => true | unknown[] }).compile(e.params) : null;
        return check ? check(params) : true;
      }, slots);
      target = wrapped;
    } else {
      if (e.action in actions) throw new Error(`Two api routes declare the action api.${e.action}`);
      const handler = e.handler;
      const status = e.response?.status;
      actions[e.action] = {
        ...(e.params ? { params: e.params } : {}),
        async handler(ctx: RagmeshContext) {
          const result = await handler(ctx);
          if (status && ctx.meta.$statusCode === undefined) ctx.meta.$statusCode = status;
          return result;
        },
      };
      target = `api.${e.action}`;
    }
    const forMount = aliases.get(mount) ?? {};
    forMount[aliasKey] = target;
    aliases.set(mount, forMount);
  }
  const routes = [PUBLIC, ...MOUNTS]
    .filter((m) => aliases.has(m))
    .map((m) => ({
      name: m.name,
      path: m.path,
      mappingPolicy: 'restrict',
      authentication: m.authenticated && authenticate,
      // The permission check and the maintenance gate run for every route, public ones included.
      authorization: true,
      bodyParsers: m.bodyParsers,
      ...(m === PUBLIC ? { logging: true } : {}),
      aliases: aliases.get(m),
    }));
  return { routes, actions: actions as Gateway['actions'], openInMaintenance, endpoints };
}
