import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appError } from '../../../lib/errors.ts';
import { isUuid } from '../../../lib/ids.ts';
import { jobsContext, type JobsContext } from '../../../lib/jobs/context.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView, type JobView } from '../../../lib/jobs/model.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { SEARCH_TABLES_CHANGED_EVENT } from '../../../lib/search/upkeep.ts';
import type { JobRow } from '../../../lib/repositories/jobs.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { openSse } from '../sse.ts';
import type { Action } from '../../../lib/auth/permissions.ts';
import type { ErrorCode } from '../../../lib/errors.ts';
import { endpoint, type Endpoint, type GatewayRequest, type JsonSchema, type ParamsSchema } from './module.ts';

type Broker = RagmeshContext['broker'];

/**
 * What the documents, uploads and jobs routes share on one api node: the jobs context
 * (lib/jobs commands, job changes broadcast to the mesh) and the feed of job updates
 * that their SSE streams read. Made once per api service (./index.ts).
 */
export interface JobFeed {
  /** The lib/jobs context of this node; job changes go out through `broker`. */
  context(broker: Broker): Promise<JobsContext>;
  /** Sends the current jobs, then every matching update of the mesh, until the client goes. */
  stream(req: IncomingMessage, res: ServerResponse, match: (job: JobView) => boolean, initial: JobRow[]): void;
  /** Hands a `jobs.updated` event of the mesh to the open streams. */
  publish(job: JobView): void;
}

export function jobFeed(runtime: Runtime): JobFeed {
  /** Job updates of the whole mesh, fanned out to this node's SSE streams. */
  const events = new EventEmitter().setMaxListeners(0);
  let ctx: Promise<JobsContext> | null = null;
  let broker: Broker | null = null;
  return {
    context(b) {
      broker = b;
      ctx ??= jobsContext(runtime, {
        updated: (job) => void broker?.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined),
        cancelRequested: (jobId) => void broker?.broadcast(JOB_CANCEL_EVENT, { jobId }).catch(() => undefined),
        chunksDeleted: () => void broker?.broadcast(SEARCH_TABLES_CHANGED_EVENT, {}).catch(() => undefined),
      });
      ctx.catch(() => (ctx = null));
      return ctx;
    },
    stream(req, res, match, initial) {
      const sse = openSse(req, res);
      const request = (req as GatewayRequest).$ctx;
      sse.send('meta', { requestId: request?.requestID ?? null });
      for (const job of initial) sse.send('job', jobView(job));
      const listener = (job: JobView) => {
        if (match(job)) sse.send('job', job);
      };
      events.on('job', listener);
      void sse.closed.then(() => events.off('job', listener));
    },
    publish(job) {
      events.emit('job', job);
    },
  };
}

/** The caller's tenant. */
export const scopeOf = (ctx: RagmeshContext) => tenantScope(ctx.meta.auth!.tenantId);

/** An id of ours, or the resource's 404 (a malformed id names nothing that exists). */
export function requireId(id: unknown, what: 'job' | 'document' | 'upload'): string {
  if (!isUuid(id)) throw appError(`${what.toUpperCase() as Uppercase<typeof what>}_NOT_FOUND`, `No ${what} ${String(id).slice(0, 64)}`);
  return id;
}

/** A JSON answer from a streaming route (which writes its own response). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

/**
 * A GET route answering `{ items }`, newest first: `limit` (1…500, default 50) and the
 * route's own filters as parameters, `rows` reads them (the documents and jobs lists).
 */
export function listEndpoint<P extends object>(e: {
  path: string;
  permission: Action;
  summary: string;
  action: string;
  params?: ParamsSchema;
  item: JsonSchema;
  errors?: readonly ErrorCode[];
  rows: (ctx: RagmeshContext<P & { limit?: number }>, limit: number) => Promise<unknown[]>;
}): Endpoint {
  return endpoint<P & { limit?: number }>({
    method: 'GET',
    path: e.path,
    permission: e.permission,
    summary: e.summary,
    params: { ...e.params, limit: { type: 'number', convert: true, integer: true, min: 1, max: 500, optional: true } },
    response: { schema: list(e.item) },
    ...(e.errors ? { errors: e.errors } : {}),
    action: e.action,
    async handler(ctx) {
      return { items: await e.rows(ctx, ctx.params.limit ?? 50) };
    },
  });
}

/**
 * An SSE route of job updates (permission jobs.read, one `events` stream slot):
 * `select` checks the request and says which jobs it shows — those to send first and
 * the rule for every later update (the caller's jobs, a document's jobs).
 */
export function jobEventsEndpoint(feed: JobFeed, e: {
  path: string;
  summary: string;
  params?: ParamsSchema;
  errors?: readonly ErrorCode[];
  select: (req: GatewayRequest) => Promise<{ initial: JobRow[]; match: (job: JobView) => boolean }>;
}): Endpoint {
  return endpoint({
    method: 'GET',
    path: e.path,
    permission: 'jobs.read',
    summary: e.summary,
    ...(e.params ? { params: e.params } : {}),
    response: { contentType: 'text/event-stream' },
    ...(e.errors ? { errors: e.errors } : {}),
    streamCap: 'events',
    async stream({ req, res }) {
      const { initial, match } = await e.select(req);
      feed.stream(req, res, match, initial);
    },
  });
}

export const list = (item: JsonSchema): JsonSchema => ({ type: 'object', required: ['items'], properties: { items: { type: 'array', items: item } } });
export const JOB_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['id', 'status', 'attempts'],
  properties: { id: { type: 'string' }, status: { enum: ['queued', 'running', 'ready', 'failed', 'canceled'] }, step: { type: ['string', 'null'] }, progress: { type: ['number', 'null'] }, attempts: { type: 'integer' } },
};
export const DOCUMENT_SCHEMA: JsonSchema = { type: 'object', required: ['id', 'status'], properties: { id: { type: 'string' }, status: { type: 'string' } } };
const ONE_UPLOAD: JsonSchema = { type: 'object', required: ['document', 'job', 'duplicate'], properties: { document: DOCUMENT_SCHEMA, job: JOB_SCHEMA, duplicate: { type: 'boolean' } } };
/** One file's outcome, or `{ items }` for several. */
export const UPLOAD_RESULT_SCHEMA: JsonSchema = { oneOf: [ONE_UPLOAD, list(ONE_UPLOAD)] };
