import { analysisKeys } from '../../../lib/analyze/analysis.ts';
import type { Principal } from '../../../lib/auth/jwt.ts';
import { appError } from '../../../lib/errors.ts';
import { enqueueJob } from '../../../lib/jobs/commands.ts';
import type { JobsContext } from '../../../lib/jobs/context.ts';
import { jobView, type JobView } from '../../../lib/jobs/model.ts';
import { tenantScope, type TenantScope } from '../../../lib/ports/tenant-scope.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import type { JobFeed } from './job-feed.ts';
import { endpoint, type ApiRouteModule } from './module.ts';
import { isUuid } from '../../../lib/ids.ts';
import { readAll } from '../../../lib/streams.ts';


/**
 * Queues an analysis of the document's current version (lib/jobs), or answers the one
 * already open for it (two clicks make one job). `created` says which.
 */
export async function queueAnalysis(jobs: JobsContext, scope: TenantScope, auth: Principal, documentId: string): Promise<{ job: JobView; created: boolean }> {
  const document = await jobs.repos.documents.get(scope, documentId);
  if (!document) throw appError('DOCUMENT_NOT_FOUND', `No document ${documentId}`);
  const open = (await jobs.repos.jobs.listOpen(scope, documentId)).find((j) => j.type === 'analyze');
  if (open) return { job: jobView(open), created: false };
  const { job, created } = await enqueueJob(jobs, scope, { type: 'analyze', payload: { documentId, version: document.version }, createdBy: auth.userId });
  return { job: jobView(job), created };
}

/**
 * Document analyses: `POST documents/:id/analyses` queues one on the analyze
 * service's queue; `GET documents/:id/analysis` returns the latest artifact as JSON,
 * or as Markdown with `?format=markdown`.
 */
export function analysisRoutes(runtime: Runtime, feed: JobFeed): ApiRouteModule {
  const documentId = (raw: unknown) => {
    if (!isUuid(raw)) throw appError('DOCUMENT_NOT_FOUND', `No document ${String(raw).slice(0, 64)}`);
    return raw;
  };
  return {
    endpoints: [
      endpoint<{ id: string }>({
        method: 'POST',
        path: '/api/v1/documents/:id/analyses',
        permission: 'analyses.create',
        summary: 'Queue an analysis of a document: 202 queued, 200 when one is already queued or running',
        params: { id: 'string' },
        response: { status: 202, schema: { type: 'object', required: ['id', 'status'] } },
        errors: ['DOCUMENT_NOT_FOUND'],
        action: 'analyses.create',
        async handler(ctx: RagmeshContext<{ id: string }>) {
          const auth = ctx.meta.auth!;
          const result = await queueAnalysis(await feed.context(ctx.broker), tenantScope(auth.tenantId), auth, documentId(ctx.params.id));
          ctx.meta.$statusCode = result.created ? 202 : 200;
          return result.job;
        },
      }),
      endpoint<{ id: string; format?: 'json' | 'markdown' | 'md' }>({
        method: 'GET',
        path: '/api/v1/documents/:id/analysis',
        permission: 'analyses.read',
        summary: 'The latest analysis of a document, as JSON or Markdown (format=markdown)',
        response: { schema: { type: 'object' } },
        errors: ['DOCUMENT_NOT_FOUND', 'ANALYSIS_NOT_FOUND'],
        action: 'analyses.get',
        params: { id: 'string', format: { type: 'enum', values: ['json', 'markdown', 'md'], optional: true } },
        async handler(ctx: RagmeshContext<{ id: string; format?: 'json' | 'markdown' | 'md' }>) {
          const scope = tenantScope(ctx.meta.auth!.tenantId);
          const id = documentId(ctx.params.id);
          const { documents } = await runtime.stores.repos();
          if (!(await documents.get(scope, id))) throw appError('DOCUMENT_NOT_FOUND', `No document ${id}`);
          const markdown = ctx.params.format === 'markdown' || ctx.params.format === 'md';
          const keys = analysisKeys(scope.tenantId, id);
          const objects = await runtime.stores.objects();
          const key = markdown ? keys.markdown : keys.json;
          if (!(await objects.stat(key))) throw appError('ANALYSIS_NOT_FOUND', 'This document has not been analyzed yet: POST /api/v1/documents/:id/analyses');
          const body = (await readAll(await objects.get(key))).toString('utf8');
          if (markdown) {
            ctx.meta.$responseType = 'text/markdown; charset=utf-8';
            return body;
          }
          return JSON.parse(body);
        },
      }),
    ],
  };
}
