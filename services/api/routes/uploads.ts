import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { appError } from '../../../lib/errors.ts';
import { isUuid } from '../../../lib/ids.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { measureStored, parseFields, registerUpload, screenUpload, storeStream, tooLarge, uploadKey } from '../uploads.ts';
import { requireId, scopeOf, UPLOAD_RESULT_SCHEMA, type JobFeed } from './job-feed.ts';
import { endpoint, type ApiRouteModule } from './module.ts';

const PRESIGN_TTL_SECONDS = 15 * 60;

interface UploadSession {
  tenantId: string;
  userId: string;
  objectKey: string;
  expiresAt: string;
}

/**
 * Presigned uploads: ask where to PUT the bytes (the object store's own URL, or a
 * signed one of this gateway), PUT them, then complete: the document is recorded and
 * its ingest job queued exactly as a multipart upload's (./documents.ts).
 */
export function uploadRoutes(runtime: Runtime, feed: JobFeed): ApiRouteModule {
  const { config } = runtime;
  const uploadSecret = () => createHmac('sha256', runtime.jwtSecret).update('ragmesh-upload-url').digest();
  const signUpload = (id: string, expiresAt: string) => createHmac('sha256', uploadSecret()).update(`${id}|${expiresAt}`).digest('base64url');

  return {
    endpoints: [
      /** Step 1 of a presigned upload: where to PUT the bytes. */
      endpoint({
        method: 'POST',
        path: '/api/v1/uploads',
        permission: 'documents.upload',
        summary: 'Presigned upload, step 1: where to PUT the bytes',
        response: { status: 201, schema: { type: 'object', required: ['uploadId', 'method', 'url', 'expiresAt', 'maxBytes'] } },
        action: 'uploads.create',
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
      }),
      endpoint({
        method: 'PUT',
        path: '/api/v1/uploads/:id',
        summary: 'Presigned upload, step 2: the raw bytes to the signed URL (no token)',
        public: true,
        body: 'binary',
        response: { contentType: 'none' },
        errors: ['INVALID_UPLOAD_URL', 'UPLOAD_URL_EXPIRED', 'UPLOAD_NOT_FOUND', 'FILE_TOO_LARGE'],
        async stream({ req, res }) {
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
        },
      }),
      /** Step 3: the bytes are there; record the document and queue its job. */
      endpoint<{ id: string; filename?: string; source_id?: string; tags?: string[]; title?: string }>({
        method: 'POST',
        path: '/api/v1/uploads/:id/complete',
        permission: 'documents.upload',
        summary: 'Presigned upload, step 3: record the document and queue its job',
        params: {
          id: 'string',
          filename: { type: 'string', optional: true, max: 1024 },
          source_id: { type: 'string', optional: true },
          tags: { type: 'array', items: 'string', optional: true },
          title: { type: 'string', optional: true },
        },
        response: { status: 202, schema: UPLOAD_RESULT_SCHEMA },
        errors: ['UPLOAD_NOT_FOUND', 'UPLOAD_MISSING', 'EMPTY_FILE', 'FILE_TOO_LARGE', 'UNSUPPORTED_TYPE', 'TYPE_MISMATCH', 'ENCRYPTED_PDF', 'ACTIVE_CONTENT', 'POLYGLOT', 'ARCHIVE_BOMB', 'UNSAFE_ARCHIVE', 'INVALID_SOURCE_ID', 'INVALID_TAGS'],
        action: 'uploads.complete',
        async handler(ctx) {
          const scope = scopeOf(ctx);
          const auth = ctx.meta.auth!;
          const id = requireId(ctx.params.id, 'upload');
          const kv = await runtime.stores.kv();
          const session = JSON.parse((await kv.get(`upload:${id}`)) ?? 'null') as UploadSession | null;
          if (!session || session.tenantId !== scope.tenantId || session.userId !== auth.userId) throw appError('UPLOAD_NOT_FOUND', 'No such upload');
          const jobs = await feed.context(ctx.broker);
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
          const filename = ctx.params.filename ? ctx.params.filename.split(/[\\/]/).pop()!.slice(0, 255) : null;
          const file = { ...measured, objectKey: session.objectKey, filename };
          try {
            screenUpload(file);
          } catch (err) {
            // A refused file leaves nothing: its object goes, and the upload is used up.
            await objects.delete(session.objectKey).catch(() => undefined);
            await kv.delete(`upload:${id}`);
            throw err;
          }
          const result = await registerUpload(jobs, scope, auth, file, fields);
          await kv.delete(`upload:${id}`);
          ctx.meta.$statusCode = result.duplicate ? 200 : 202;
          return result;
        },
      }),
    ],
  };
}
