/**
 * HOW TO DECLARE AN API ROUTE
 *
 * Every HTTP endpoint of ragmesh is one `Endpoint` value in a route module of this
 * folder (listed in ./index.ts). The gateway (../api.service.ts) builds everything
 * else from these declarations: the moleculer-web aliases, the api actions, the role
 * check, the maintenance-mode gate, the access-log route name and /api/openapi.json.
 * Nothing else registers a route, checks a role or validates parameters.
 *
 *   endpoint({
 *     method: 'GET',
 *     path: '/api/v1/chats/:id',            // full path; `:name` is a path parameter
 *     summary: 'One chat with its messages',
 *     permission: 'chats.read',             // the action in lib/auth/permissions.ts: who may, and its rate class
 *     params: { id: { type: 'uuid' } },     // fastest-validator schema, the ONLY validation
 *     response: { schema: CHAT_SCHEMA },    // JSON Schema of the success body (OpenAPI)
 *     errors: ['CHAT_NOT_FOUND'],           // catalogued codes it may answer (lib/errors.ts)
 *     action: 'chats.get',                  // becomes the action `api.chats.get`
 *     handler: async (ctx) => …,            // plain JSON result; ctx.params already valid
 *   })
 *
 * - `params` is checked by Moleculer's validator before the handler runs (422
 *   VALIDATION_FAILED with details); handlers never re-check types or ranges. Checks
 *   that are meaning, not shape (a message that is blank once trimmed), stay in the
 *   handler with their own catalogued code.
 * - A route that streams (SSE), reads multipart or raw bytes declares `stream` instead
 *   of `action`/`handler`: it gets `{ req, res, ctx, params }` with params (query, JSON
 *   body and path parameters) already validated against `params`; errors thrown before
 *   the first byte go out in the one error shape (../error-body.ts). A long-lived one
 *   declares `streamCap` (answer or events): the caller's concurrent streams are capped.
 * - `public: true` skips the token (health, signed upload URLs). Paths under /api/v1
 *   take JSON bodies up to 1 MB, under /v1 up to 2 MB; public routes read no body.
 * - Non-GET routes are refused in maintenance mode unless `duringMaintenance: true`
 *   (search, embeddings, leaving maintenance).
 * - `permission` (required unless `public`) names the action in the one permission
 *   table (lib/auth/permissions.ts): the gateway lets through the roles the table gives
 *   it and counts the request in its rate class. No route names roles itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServiceBroker, ServiceSchema } from 'moleculer';
import type { Action } from '../../../lib/auth/permissions.ts';
import type { StreamKind } from '../../../lib/auth/stream-slots.ts';
import type { ErrorCode } from '../../../lib/errors.ts';
import type { RagmeshContext } from '../../../lib/runtime/service-kit.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** Moleculer's (fastest-validator) parameter schema. */
export type ParamsSchema = Record<string, unknown>;
/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it). */
export type JsonSchema = Record<string, unknown>;

/** The request as moleculer-web hands it to an alias handler: the one shape every route sees. */
export interface GatewayRequest extends IncomingMessage {
  $ctx: RagmeshContext;
  $params: Record<string, string>;
  $action?: { name: string };
  $startTime?: [number, number];
  $alias?: { fullPath?: string };
  $endpoint?: Endpoint;
  originalUrl?: string;
  body?: unknown;
}

/** What a streaming route's function receives. */
export interface StreamCall<P> {
  req: GatewayRequest;
  res: ServerResponse;
  ctx: RagmeshContext;
  broker: ServiceBroker;
  /** Query, JSON body and path parameters, validated against the route's `params`. */
  params: P;
  /**
   * Resolves once the caller holds the route's stream slot (`streamCap`), rejects with
   * 429 TOO_MANY_STREAMS past the cap. Already settled unless the route declares
   * `readsBeforeAdmission`.
   */
  admitted: Promise<void>;
}

interface EndpointBase {
  method: HttpMethod;
  /** The full path, `:name` for path parameters: `/api/v1/chats/:id`. */
  path: string;
  /** Left out of the access log (health probes every few seconds). */
  quiet?: boolean;
  /** One line for /api/openapi.json. */
  summary: string;
  /** The action of the permission table this route is (who may call, which rate class); required unless public. */
  permission?: Action;
  /** No token: health, signed upload URLs. */
  public?: boolean;
  /** A non-GET route that changes nothing, or that ends maintenance: open in maintenance mode. */
  duringMaintenance?: boolean;
  /** Parameters (query, body and path together), validated by this schema only. */
  params?: ParamsSchema;
  /** A body that is not JSON: a multipart form, or the raw file bytes. */
  body?: 'multipart' | 'binary';
  /** The success answer: status (200 unless said), body schema and content type. */
  response?: { status?: number; schema?: JsonSchema; contentType?: string };
  /** Catalogued error codes the route may answer, besides those every route may (auth, validation, capacity). */
  errors?: readonly ErrorCode[];
}

export interface ActionEndpoint<P = any> extends EndpointBase {
  /** The api action behind the route, without the `api.` prefix. */
  action: string;
  handler: (ctx: RagmeshContext<P>) => unknown;
  stream?: never;
}

export interface StreamEndpoint<P = any> extends EndpointBase {
  stream: (call: StreamCall<P>) => Promise<void>;
  /**
   * A long-lived answer: the gateway takes one of the caller's stream slots of this kind
   * (lib/auth/stream-slots.ts, counted across replicas) before `stream` runs and frees it
   * when the response closes; past the cap 429 TOO_MANY_STREAMS. Required on event streams.
   */
  streamCap?: StreamKind;
  /**
   * `stream` starts while the slot is being taken, so its first reads overlap that round
   * trip; it must await `admitted` before it writes, calls another service or answers
   * (a refused slot is then still the 429, and nothing was done for it).
   */
  readsBeforeAdmission?: boolean;
  action?: never;
  handler?: never;
}

export type Endpoint = ActionEndpoint | StreamEndpoint;

/** Declares one route; the generic ties `params`' type to what the handler reads. */
export function endpoint<P = Record<string, never>>(e: ActionEndpoint<P> | StreamEndpoint<P>): Endpoint {
  return e as Endpoint;
}

/** A slice of the gateway: its endpoints, plus what the api service runs for them. */
export interface ApiRouteModule {
  endpoints: Endpoint[];
  /** Moleculer event handlers of the api service (e.g. job updates feeding SSE streams). */
  events?: NonNullable<ServiceSchema['events']>;
  started?: () => Promise<void>;
  stopped?: () => Promise<void>;
}

/** The one pattern of ids ragmesh hands out (documents, jobs, chats, uploads). */
export { UUID_PATTERN } from '../../../lib/ids.ts';
