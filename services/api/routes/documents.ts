import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Role } from '../../../lib/auth/jwt.ts';
import { appError } from '../../../lib/errors.ts';
import { cancelJob, deleteDocument, getJob, replayDeadLetter, retryJob } from '../../../lib/jobs/commands.ts';
import { jobsContext, type JobsContext } from '../../../lib/jobs/context.ts';
import { JOB_CANCEL_EVENT, JOB_UPDATED_EVENT, jobView, type JobView } from '../../../lib/jobs/model.ts';
import { jobQueues } from '../../../lib/jobs/types/index.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { JOB_STATUSES, type JobRow, type JobStatus } from '../../../lib/repositories/jobs.ts';
import { currentRequest } from '../../../lib/logging.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { openSse } from '../sse.ts';
import { documentView, measureStored, parseFields, receiveMultipart, registerUpload, storeStream, tooLarge, uploadKey } from '../uploads.ts';
import { queueAnalysis } from './analyses.ts';
import { endpoint, type ApiRouteModule, type GatewayRequest, type JsonSchema, type StreamCall } from './module.ts';
import { isUuid } from '../../../lib/ids.ts';
import type { ErrorCode } from '../../../lib/errors.ts';

const list = (item: JsonSchema): JsonSchema => ({ type: 'object', required: ['items'], properties: { items: { type: 'array', items: item } } });
const JOB: JsonSchema = {
  type: 'object',
  required: ['id', 'status', 'attempts'],
  properties: { id: { type: 'string' }, status: { enum: ['queued', 'running', 'ready', 'failed', 'canceled'] }, step: { type: ['string', 'null'] }, progress: { type: ['number', 'null'] }, attempts: { type: 'integer' } },
};
const DOCUMENT: JsonSchema = { type: 'object', required: ['id', 'status'], properties: { id: { type: 'string' }, status: { type: 'string' } } };
const DELETED: JsonSchema = { type: 'object', required: ['id', 'deleted'], properties: { id: { type: 'string' }, deleted: { const: true } } };
const ONE_UPLOAD: JsonSchema = { type: 'object', required: ['document', 'job', 'duplicate'], properties: { document: DOCUMENT, job: JOB, duplicate: { type: 'boolean' } } };
const UPLOAD_RESULT: JsonSchema = { oneOf: [ONE_UPLOAD, list(ONE_UPLOAD)] };
const UPLOAD_ERRORS: ErrorCode[] = ['EXPECTED_MULTIPART', 'MALFORMED_MULTIPART', 'NO_FILE', 'TOO_MANY_FILES', 'FILE_TOO_LARGE', 'EMPTY_FILE', 'UNSUPPORTED_TYPE', 'INVALID_SOURCE_ID', 'INVALID_TAGS', 'UPLOAD_ABORTED'];

const WRITERS: Role[] = ['editor', 'admin', 'tenant_admin'];
const PRESIGN_TTL_SECONDS = 15 * 60;

interface RawThis {
  broker: RagmeshContext['broker'];
}

interface UploadSession {
  tenantId: string;
  userId: string;
  objectKey: string;
  expiresAt: string;
}

/**
 * Documents and their ingest jobs: upload (multipart, or presigned PUT then
 * complete), list/get/delete, job status, cancel and retry, live status over SSE,
 * dead letters for admins.
 */
export function documentRoutes(runtime: Runtime): ApiRouteModule {
  const { config } = runtime;
  /** Job updates of the whole mesh, fanned out to this node's SSE streams. */
  const jobEvents = new EventEmitter().setMaxListeners(0);

  /** The jobs context of this api node: the lifecycle commands (lib/jobs), job changes broadcast to the mesh. */
  let jobsCtx: Promise<JobsContext> | null = null;
  let jobsBroker: RawThis['broker'] | null = null;
  const jobsFor = (broker: RawThis['broker']): Promise<JobsContext> => {
    jobsBroker = broker;
    jobsCtx ??= jobsContext(runtime, {
      updated: (job) => void jobsBroker?.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined),
      cancelRequested: (jobId) => void jobsBroker?.broadcast(JOB_CANCEL_EVENT, { jobId }).catch(() => undefined),
    });
    jobsCtx.catch(() => (jobsCtx = null));
    return jobsCtx;
  };
  const repos = () => runtime.stores.repos();
  const scopeOf = (ctx: RagmeshContext) => tenantScope(ctx.meta.auth!.tenantId);
  const requireId = (id: unknown, what: 'job' | 'document' | 'upload') => {
    if (!isUuid(id)) throw appError(`${what.toUpperCase() as Uppercase<typeof what>}_NOT_FOUND`, `No ${what} ${String(id).slice(0, 64)}`);
    return id;
  };

  /** A streaming route's function, written against (req, res) with the broker as `this`. */
  const raw = (handler: (this: RawThis, req: GatewayRequest, res: ServerResponse) => Promise<void>) => (call: StreamCall<unknown>) =>
    handler.call({ broker: call.broker }, call.req, call.res);
  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };

  /** The caller's document by id, with the repositories; a foreign or unknown id is a 404. */
  const documentOf = async (ctx: RagmeshContext, rawId: unknown) => {
    const scope = scopeOf(ctx);
    const id = requireId(rawId, 'document');
    const r = await repos();
    const document = await r.documents.get(scope, id);
    if (!document) throw appError('DOCUMENT_NOT_FOUND', `No document ${id}`);
    return { ...r, scope, id, document };
  };

  const uploadSecret = () => createHmac('sha256', runtime.jwtSecret).update('ragmesh-upload-url').digest();
  const signUpload = (id: string, expiresAt: string) => createHmac('sha256', uploadSecret()).update(`${id}|${expiresAt}`).digest('base64url');

  const uploadDocuments = raw(async function (req, res) {
        const auth = req.$ctx.meta.auth!;
        const scope = tenantScope(auth.tenantId);
        const jobs = await jobsFor(this.broker);
        const objects = await jobs.objects();
        const { files, fields } = await receiveMultipart(req, {
          objects,
          scope,
          maxBytes: config.ingest.uploadMaxBytes,
          maxFiles: config.ingest.uploadMaxFiles,
        });
        const results = [];
        for (const [i, file] of files.entries()) {
          try {
            results.push(await registerUpload(jobs, scope, auth, file, fields));
          } catch (err) {
            // One bad file fails the request; those not yet registered are removed.
            await Promise.all(files.slice(i + 1).map((f) => objects.delete(f.objectKey).catch(() => undefined)));
            throw err;
          }
        }
        // analyze=true (a form field or the query) queues an analysis of each document; it starts once its text is indexed.
        const analyze = fields.analyze ? 'true' : (new URL(req.url ?? '/', 'http://x').searchParams.get('analyze') ?? '').toLowerCase();
        const answers: Array<(typeof results)[number] & { analysis?: JobView }> = results;
        if (analyze === 'true' || analyze === '1') {
          for (const r of answers) r.analysis = (await queueAnalysis(runtime, (e, p) => this.broker.broadcast(e, p), scope, auth, r.document.id)).job;
        }
        const fresh = results.some((r) => !r.duplicate);
        sendJson(res, fresh ? 202 : 200, answers.length === 1 ? answers[0] : { items: answers });
      });
  const documentEvents = raw(async function (req, res) {
        const scope = scopeOf(req.$ctx);
        const documentId = requireId(req.$params.id, 'document');
        const { documents, jobs } = await repos();
        if (!(await documents.get(scope, documentId))) throw appError('DOCUMENT_NOT_FOUND', `No document ${documentId}`);
        streamJobs(req, res, jobEvents, (job) => job.tenantId === scope.tenantId && job.documentId === documentId, await jobs.list(scope, { documentId, limit: 20 }));
      });
  const myJobEvents = raw(async function (req, res) {
        const auth = req.$ctx.meta.auth!;
        const scope = tenantScope(auth.tenantId);
        const { jobs } = await repos();
        const mine = (await jobs.list(scope, { limit: 50 })).filter((j) => j.createdBy === auth.userId && (j.status === 'queued' || j.status === 'running'));
        streamJobs(req, res, jobEvents, (job) => job.tenantId === scope.tenantId && job.createdBy === auth.userId, mine);
      });
  const putUpload = raw(async function (req, res) {
            const id = req.$params.id ?? '';
            const url = new URL(req.url ?? '/', 'http://x');
            const expires = url.searchParams.get('expires') ?? '';
            const signature = Buffer.from(url.searchParams.get('signature') ?? '');
            const expected = Buffer.from(signUpload(id, expires));
            if (!isUuid(id) || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
              throw appError('INVALID_UPLOAD_URL', 'The upload URL is invalid');
            }
            if (Date.parse(expires) < Date.now()) throw appError('UPLOAD_URL_EXPIRED', 'The upload URL has expired');
            const kv = await runtime.stores.kv();
            const session = JSON.parse((await kv.get(`upload:${id}`)) ?? 'null') as UploadSession | null;
            if (!session) throw appError('UPLOAD_NOT_FOUND', 'No such upload');
            const declared = Number(req.headers['content-length'] ?? 0);
            if (declared > config.ingest.uploadMaxBytes) throw tooLarge(config.ingest.uploadMaxBytes);
            await storeStream(await runtime.stores.objects(), session.objectKey, req, config.ingest.uploadMaxBytes);
            res.writeHead(200).end();
          });

  const actions: Record<string, { params?: Record<string, unknown>; handler: (ctx: RagmeshContext<any>) => unknown }> = {
      'documents.list': {
        params: { limit: { type: 'number', convert: true, integer: true, min: 1, max: 500, optional: true }, before: { type: 'date', convert: true, optional: true } },
        async handler(ctx: RagmeshContext<{ limit?: number; before?: Date }>) {
          const { documents } = await repos();
          const rows = await documents.list(scopeOf(ctx), { limit: ctx.params.limit ?? 50, before: ctx.params.before });
          return { items: rows.map(documentView) };
        },
      },

      'documents.get': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const { scope, id, document, jobs } = await documentOf(ctx, ctx.params.id);
          const [job] = await jobs.list(scope, { documentId: id, limit: 1 });
          return { ...documentView(document), job: job ? jobView(job) : null };
        },
      },

      'documents.chunks': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const { scope, id, chunks } = await documentOf(ctx, ctx.params.id);
          const rows = await chunks.listByDocument(scope, id);
          return { items: rows.map((c) => ({ id: c.id, ord: c.ord, page: c.page, heading: c.heading, lang: c.lang, tokenCount: c.tokenCount, text: c.text })) };
        },
      },

      /** Removes the document, its chunks (cascade), its vectors in every model version and its files. */
      'documents.delete': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const id = requireId(ctx.params.id, 'document');
          await deleteDocument(await jobsFor(ctx.broker), scopeOf(ctx), id, { userId: ctx.meta.auth!.userId, requestId: currentRequest()?.requestId });
          return { id, deleted: true };
        },
      },

      /** Step 1 of a presigned upload: where to PUT the bytes. */
      'uploads.create': {
        async handler(ctx: RagmeshContext) {
          const scope = scopeOf(ctx);
          const auth = ctx.meta.auth!;
          const id = randomUUID();
          const objectKey = uploadKey(scope).replace(/[^/]+$/, id);
          const expiresAt = new Date(Date.now() + PRESIGN_TTL_SECONDS * 1000).toISOString();
          const session: UploadSession = { tenantId: scope.tenantId, userId: auth.userId, objectKey, expiresAt };
          await (await runtime.stores.kv()).set(`upload:${id}`, JSON.stringify(session), PRESIGN_TTL_SECONDS * 1000 * 2);
          const direct = await (await runtime.stores.objects()).presignPut(objectKey, PRESIGN_TTL_SECONDS);
          const url = direct ?? `/api/v1/uploads/${id}?expires=${encodeURIComponent(expiresAt)}&signature=${signUpload(id, expiresAt)}`;
          ctx.meta.$statusCode = 201;
          ctx.meta.$location = `/api/v1/uploads/${id}`;
          return { uploadId: id, method: 'PUT', url, expiresAt, maxBytes: config.ingest.uploadMaxBytes };
        },
      },

      /** Step 2: the bytes are there; record the document and queue its job. */
      'uploads.complete': {
        params: {
          id: 'string',
          filename: { type: 'string', optional: true, max: 1024 },
          source_id: { type: 'string', optional: true },
          tags: { type: 'array', items: 'string', optional: true },
          title: { type: 'string', optional: true },
        },
        async handler(ctx: RagmeshContext<{ id: string; filename?: string; source_id?: string; tags?: string[]; title?: string }>) {
          const scope = scopeOf(ctx);
          const auth = ctx.meta.auth!;
          const id = requireId(ctx.params.id, 'upload');
          const kv = await runtime.stores.kv();
          const session = JSON.parse((await kv.get(`upload:${id}`)) ?? 'null') as UploadSession | null;
          if (!session || session.tenantId !== scope.tenantId || session.userId !== auth.userId) throw appError('UPLOAD_NOT_FOUND', 'No such upload');
          const jobs = await jobsFor(ctx.broker);
          const objects = await jobs.objects();
          const info = await objects.stat(session.objectKey);
          if (!info) throw appError('UPLOAD_MISSING', 'Nothing was uploaded to the URL yet');
          if (info.size > config.ingest.uploadMaxBytes) {
            await objects.delete(session.objectKey);
            throw tooLarge(config.ingest.uploadMaxBytes);
          }
          if (info.size === 0) {
            await objects.delete(session.objectKey);
            throw appError('EMPTY_FILE', 'The uploaded file is empty');
          }
          // Hash what is really stored (the client's word is not proof) by reading it once.
          const measured = await measureStored(objects, session.objectKey);
          const fields = parseFields({ source_id: ctx.params.source_id, tags: ctx.params.tags, title: ctx.params.title });
          const result = await registerUpload(jobs, scope, auth, { ...measured, objectKey: session.objectKey, filename: ctx.params.filename ? ctx.params.filename.split(/[\\/]/).pop()!.slice(0, 255) : null }, fields);
          await kv.delete(`upload:${id}`);
          ctx.meta.$statusCode = result.duplicate ? 200 : 202;
          return result;
        },
      },

      'jobs.list': {
        params: {
          status: { type: 'enum', values: [...JOB_STATUSES], optional: true },
          documentId: { type: 'string', optional: true },
          limit: { type: 'number', convert: true, integer: true, min: 1, max: 500, optional: true },
        },
        async handler(ctx: RagmeshContext<{ status?: JobStatus; documentId?: string; limit?: number }>) {
          const { jobs } = await repos();
          const documentId = ctx.params.documentId ? requireId(ctx.params.documentId, 'document') : undefined;
          const rows = await jobs.list(scopeOf(ctx), { status: ctx.params.status, documentId, limit: ctx.params.limit ?? 50 });
          return { items: rows.map(jobView) };
        },
      },

      'jobs.get': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          return jobView(await getJob(await jobsFor(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job')));
        },
      },

      /** Asks the job to stop: the worker running it aborts its step, removes what it wrote, and marks it canceled. */
      'jobs.cancel': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const { job, final } = await cancelJob(await jobsFor(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job'));
          if (!final) ctx.meta.$statusCode = 202;
          return jobView(job);
        },
      },

      /** Queues a failed or canceled job again; it resumes at the first step without a stored result. */
      'jobs.retry': {
        params: { id: 'string' },
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const job = await retryJob(await jobsFor(ctx.broker), scopeOf(ctx), requireId(ctx.params.id, 'job'));
          ctx.meta.$statusCode = 202;
          return jobView(job);
        },
      },

      'deadLetters.list': {
        params: { queue: { type: 'enum', values: jobQueues(), optional: true }, limit: { type: 'number', convert: true, integer: true, min: 1, max: 1000, optional: true } },
        async handler(ctx: RagmeshContext<{ queue?: string; limit?: number }>) {
          const scope = scopeOf(ctx);
          const queue = await runtime.stores.queue();
          // Without ?queue=, the dead letters of every job queue (ingest first, for older clients).
          const names = ctx.params.queue ? [ctx.params.queue] : jobQueues();
          const letters = (await Promise.all(names.map((name) => queue.listDeadLetters(name, ctx.params.limit ?? 100)))).flat();
          // Dead letters of every tenant share one queue; an admin sees those of their tenant.
          return {
            items: letters
              .filter((l) => l.message.tenantId === scope.tenantId)
              .map((l) => ({ jobId: l.message.jobId, type: l.message.type, attempt: l.message.attempt, reason: l.reason, deadAt: l.deadAt })),
            depth: await queue.depth(names[0]!),
            depths: Object.fromEntries(await Promise.all(names.map(async (name) => [name, await queue.depth(name)] as const))),
          };
        },
      },

      'deadLetters.replay': {
        params: { jobId: 'string' },
        async handler(ctx: RagmeshContext<{ jobId: string }>) {
          const result = await replayDeadLetter(await jobsFor(ctx.broker), scopeOf(ctx), requireId(ctx.params.jobId, 'job'), {
            userId: ctx.meta.auth!.userId,
            requestId: currentRequest()?.requestId,
          });
          return { job: jobView(result.job), replayed: result.replayed };
        },
      },
  };

  const act = (name: string) => {
    const action = actions[name];
    if (!action) throw new Error(`no action ${name}`);
    return action;
  };

  return {
    endpoints: [
      endpoint({ method: 'POST', path: '/api/v1/documents', summary: 'Upload one or more files (multipart `file` parts, optional source_id, tags, title): 202 queued, 200 duplicate', roles: WRITERS, body: 'multipart', response: { status: 202, schema: UPLOAD_RESULT }, errors: UPLOAD_ERRORS, stream: uploadDocuments }),
      endpoint({ method: 'GET', path: '/api/v1/documents', summary: 'Documents, newest first', response: { schema: list(DOCUMENT) }, action: 'documents.list', ...act('documents.list') }),
      endpoint({ method: 'GET', path: '/api/v1/documents/:id', summary: 'One document and its latest job', response: { schema: DOCUMENT }, errors: ['DOCUMENT_NOT_FOUND'], action: 'documents.get', ...act('documents.get') }),
      endpoint({ method: 'GET', path: '/api/v1/documents/:id/chunks', summary: 'The indexed chunks of a document', response: { schema: list({ type: 'object', required: ['id', 'ord', 'text'] }) }, errors: ['DOCUMENT_NOT_FOUND'], action: 'documents.chunks', ...act('documents.chunks') }),
      endpoint({ method: 'DELETE', path: '/api/v1/documents/:id', summary: 'Delete a document: its running job stopped, file, chunks and vectors removed', roles: WRITERS, response: { schema: DELETED }, errors: ['DOCUMENT_NOT_FOUND'], action: 'documents.delete', ...act('documents.delete') }),
      endpoint({ method: 'GET', path: '/api/v1/documents/:id/events', summary: "SSE: the document's job as it moves", params: { id: 'string' }, response: { contentType: 'text/event-stream' }, errors: ['DOCUMENT_NOT_FOUND'], stream: documentEvents }),
      endpoint({ method: 'POST', path: '/api/v1/uploads', summary: 'Presigned upload, step 1: where to PUT the bytes', roles: WRITERS, response: { status: 201, schema: { type: 'object', required: ['uploadId', 'method', 'url', 'expiresAt', 'maxBytes'] } }, action: 'uploads.create', ...act('uploads.create') }),
      endpoint({ method: 'PUT', path: '/api/v1/uploads/:id', summary: 'Presigned upload, step 2: the raw bytes to the signed URL (no token)', public: true, body: 'binary', response: { contentType: 'none' }, errors: ['INVALID_UPLOAD_URL', 'UPLOAD_URL_EXPIRED', 'UPLOAD_NOT_FOUND', 'FILE_TOO_LARGE'], stream: putUpload }),
      endpoint({ method: 'POST', path: '/api/v1/uploads/:id/complete', summary: 'Presigned upload, step 3: record the document and queue its job', roles: WRITERS, response: { status: 202, schema: UPLOAD_RESULT }, errors: ['UPLOAD_NOT_FOUND', 'UPLOAD_MISSING', 'EMPTY_FILE', 'FILE_TOO_LARGE', 'UNSUPPORTED_TYPE', 'INVALID_SOURCE_ID', 'INVALID_TAGS'], action: 'uploads.complete', ...act('uploads.complete') }),
      endpoint({ method: 'GET', path: '/api/v1/jobs', summary: "The tenant's jobs, newest first", response: { schema: list(JOB) }, action: 'jobs.list', ...act('jobs.list') }),
      endpoint({ method: 'GET', path: '/api/v1/jobs/events', summary: 'SSE: every job the caller started, live', response: { contentType: 'text/event-stream' }, stream: myJobEvents }),
      endpoint({ method: 'GET', path: '/api/v1/jobs/:id', summary: 'One job', response: { schema: JOB }, errors: ['JOB_NOT_FOUND'], action: 'jobs.get', ...act('jobs.get') }),
      endpoint({ method: 'POST', path: '/api/v1/jobs/:id/cancel', summary: 'Cancel a job: 200 when queued, 202 while its worker stops it', roles: WRITERS, response: { schema: JOB }, errors: ['JOB_NOT_FOUND', 'JOB_FINISHED'], action: 'jobs.cancel', ...act('jobs.cancel') }),
      endpoint({ method: 'POST', path: '/api/v1/jobs/:id/retry', summary: 'Queue a failed or canceled job again', roles: WRITERS, response: { status: 202, schema: JOB }, errors: ['JOB_NOT_FOUND', 'JOB_NOT_RETRYABLE', 'DOCUMENT_DELETED'], action: 'jobs.retry', ...act('jobs.retry') }),
      endpoint({ method: 'GET', path: '/api/v1/admin/dead-letters', summary: "Jobs that failed for good, of the admin's tenant, and the queue depths", roles: ['admin'], response: { schema: { type: 'object', required: ['items', 'depth'] } }, action: 'deadLetters.list', ...act('deadLetters.list') }),
      endpoint({ method: 'POST', path: '/api/v1/admin/dead-letters/:jobId/replay', summary: 'Queue a dead-lettered job again (audited)', roles: ['admin'], response: { schema: { type: 'object', required: ['job', 'replayed'] } }, errors: ['JOB_NOT_FOUND', 'JOB_NOT_RETRYABLE', 'DEAD_LETTER_NOT_FOUND'], action: 'deadLetters.replay', ...act('deadLetters.replay') }),
    ],

    events: {
      [JOB_UPDATED_EVENT]: {
        handler(ctx: RagmeshContext<JobView>) {
          jobEvents.emit('job', ctx.params);
        },
      },
    },
  };
}

/** Sends the current jobs, then every matching update, until the client goes. */
function streamJobs(req: IncomingMessage, res: ServerResponse, events: EventEmitter, match: (job: JobView) => boolean, initial: JobRow[]): void {
  const sse = openSse(req, res);
  const request = (req as GatewayRequest).$ctx;
  sse.send('meta', { requestId: request?.requestID ?? null });
  for (const job of initial) sse.send('job', jobView(job));
  const listener = (job: JobView) => {
    if (match(job)) sse.send('job', job);
  };
  events.on('job', listener);
  void sse.closed.then(() => events.off('job', listener));
}
