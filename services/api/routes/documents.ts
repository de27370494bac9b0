import { appError, type ErrorCode } from '../../../lib/errors.ts';
import { deleteDocument } from '../../../lib/jobs/commands.ts';
import { jobView, type JobView } from '../../../lib/jobs/model.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { currentRequest } from '../../../lib/logging.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { documentView, receiveMultipart, registerUpload, screenUpload } from '../uploads.ts';
import { queueAnalysis } from './analyses.ts';
import { DOCUMENT_SCHEMA, jobEventsEndpoint, list, listEndpoint, requireId, scopeOf, sendJson, UPLOAD_RESULT_SCHEMA, type JobFeed } from './job-feed.ts';
import { endpoint, type ApiRouteModule, type JsonSchema } from './module.ts';

const DELETED: JsonSchema = { type: 'object', required: ['id', 'deleted'], properties: { id: { type: 'string' }, deleted: { const: true } } };
const UPLOAD_ERRORS: ErrorCode[] = ['EXPECTED_MULTIPART', 'MALFORMED_MULTIPART', 'NO_FILE', 'TOO_MANY_FILES', 'FILE_TOO_LARGE', 'EMPTY_FILE', 'UNSUPPORTED_TYPE', 'TYPE_MISMATCH', 'ENCRYPTED_PDF', 'ACTIVE_CONTENT', 'POLYGLOT', 'ARCHIVE_BOMB', 'UNSAFE_ARCHIVE', 'INVALID_SOURCE_ID', 'INVALID_TAGS', 'UPLOAD_ABORTED'];

/**
 * Documents: upload (multipart), list, get, chunks, delete, and the live status of a
 * document's job over SSE. Presigned uploads are ./uploads.ts, jobs ./jobs.ts; every
 * lifecycle rule is a lib/jobs command.
 */
export function documentRoutes(runtime: Runtime, feed: JobFeed): ApiRouteModule {
  const { config } = runtime;
  const repos = () => runtime.stores.repos();

  /** The caller's document by id, with the repositories; a foreign or unknown id is a 404. */
  const documentOf = async (ctx: RagmeshContext, rawId: unknown) => {
    const scope = scopeOf(ctx);
    const id = requireId(rawId, 'document');
    const r = await repos();
    const document = await r.documents.get(scope, id);
    if (!document) throw appError('DOCUMENT_NOT_FOUND', `No document ${id}`);
    return { ...r, scope, id, document };
  };

  return {
    endpoints: [
      endpoint({
        method: 'POST',
        path: '/api/v1/documents',
        permission: 'documents.upload',
        summary: 'Upload one or more files (multipart `file` parts, optional source_id, tags, title): 202 queued, 200 duplicate',
        body: 'multipart',
        response: { status: 202, schema: UPLOAD_RESULT_SCHEMA },
        errors: UPLOAD_ERRORS,
        async stream({ req, res, broker }) {
          const auth = req.$ctx.meta.auth!;
          const scope = tenantScope(auth.tenantId);
          const jobs = await feed.context(broker);
          const objects = await jobs.objects();
          const { files, fields } = await receiveMultipart(req, { objects, scope, maxBytes: config.ingest.uploadMaxBytes, maxFiles: config.ingest.uploadMaxFiles });
          // Every file is screened before any is registered: one refused file leaves nothing of the request behind.
          try {
            for (const file of files) screenUpload(file);
          } catch (err) {
            await Promise.all(files.map((f) => objects.delete(f.objectKey).catch(() => undefined)));
            throw err;
          }
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
            for (const r of answers) r.analysis = (await queueAnalysis(jobs, scope, auth, r.document.id)).job;
          }
          const fresh = results.some((r) => !r.duplicate);
          sendJson(res, fresh ? 202 : 200, answers.length === 1 ? answers[0] : { items: answers });
        },
      }),
      listEndpoint<{ before?: Date }>({
        path: '/api/v1/documents',
        permission: 'documents.read',
        summary: 'Documents, newest first',
        params: { before: { type: 'date', convert: true, optional: true } },
        item: DOCUMENT_SCHEMA,
        action: 'documents.list',
        async rows(ctx, limit) {
          const { documents } = await repos();
          return (await documents.list(scopeOf(ctx), { limit, before: ctx.params.before })).map(documentView);
        },
      }),
      endpoint<{ id: string }>({
        method: 'GET',
        path: '/api/v1/documents/:id',
        permission: 'documents.read',
        summary: 'One document and its latest job',
        params: { id: 'string' },
        response: { schema: DOCUMENT_SCHEMA },
        errors: ['DOCUMENT_NOT_FOUND'],
        action: 'documents.get',
        async handler(ctx) {
          const { scope, id, document, jobs } = await documentOf(ctx, ctx.params.id);
          const [job] = await jobs.list(scope, { documentId: id, limit: 1 });
          return { ...documentView(document), job: job ? jobView(job) : null };
        },
      }),
      endpoint<{ id: string }>({
        method: 'GET',
        path: '/api/v1/documents/:id/chunks',
        permission: 'documents.read',
        summary: 'The indexed chunks of a document',
        params: { id: 'string' },
        response: { schema: list({ type: 'object', required: ['id', 'ord', 'text'] }) },
        errors: ['DOCUMENT_NOT_FOUND'],
        action: 'documents.chunks',
        async handler(ctx) {
          const { scope, id, chunks } = await documentOf(ctx, ctx.params.id);
          const rows = await chunks.listByDocument(scope, id);
          return { items: rows.map((c) => ({ id: c.id, ord: c.ord, page: c.page, heading: c.heading, lang: c.lang, tokenCount: c.tokenCount, text: c.text })) };
        },
      }),
      /** Removes the document, its chunks (cascade), its vectors in every model version and its files. */
      endpoint<{ id: string }>({
        method: 'DELETE',
        path: '/api/v1/documents/:id',
        permission: 'documents.delete',
        summary: 'Delete a document: its running job stopped, file, chunks and vectors removed',
        params: { id: 'string' },
        response: { schema: DELETED },
        errors: ['DOCUMENT_NOT_FOUND'],
        action: 'documents.delete',
        async handler(ctx) {
          const id = requireId(ctx.params.id, 'document');
          await deleteDocument(await feed.context(ctx.broker), scopeOf(ctx), id, { userId: ctx.meta.auth!.userId, requestId: currentRequest()?.requestId });
          return { id, deleted: true };
        },
      }),
      jobEventsEndpoint(feed, {
        path: '/api/v1/documents/:id/events',
        summary: "SSE: the document's job as it moves",
        params: { id: 'string' },
        errors: ['DOCUMENT_NOT_FOUND'],
        async select(req) {
          const scope = scopeOf(req.$ctx);
          const documentId = requireId(req.$params.id, 'document');
          const { documents, jobs } = await repos();
          if (!(await documents.get(scope, documentId))) throw appError('DOCUMENT_NOT_FOUND', `No document ${documentId}`);
          return { initial: await jobs.list(scope, { documentId, limit: 20 }), match: (job) => job.tenantId === scope.tenantId && job.documentId === documentId };
        },
      }),
    ],
  };
}
