import { appError } from '../../../lib/errors.ts';
import type { EmbedParams, EmbedResult } from '../../emb/emb.service.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { HybridSearch, MAX_LIMIT, type EmbedCalls } from '../../../lib/search/hybrid.ts';
import { LexicalIndexCache } from '../../../lib/search/lexical-index.ts';
import type { SearchParams, SearchResult } from '../../../lib/search/types.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { endpoint, type ApiRouteModule } from './module.ts';
import { UUID_PATTERN } from '../../../lib/ids.ts';
import { AdaptiveDeadline } from '../../../lib/search/deadline.ts';

const stringList = { type: 'array', optional: true, max: 100, items: { type: 'string', min: 1, max: 256 } } as const;

/** The search request: validated here only; lib/search trusts it. */
export const SEARCH_PARAMS = {
  // Length and emptiness are checked by the query parser, with stable codes.
  query: { type: 'string' },
  limit: { type: 'number', integer: true, min: 1, max: MAX_LIMIT, optional: true },
  mode: { type: 'enum', values: ['hybrid', 'lexical', 'dense'], optional: true },
  rrfK: { type: 'number', min: 0, max: 10_000, optional: true },
  weights: {
    type: 'object',
    optional: true,
    strict: 'remove',
    props: { lexical: { type: 'number', min: 0, max: 100, optional: true }, dense: { type: 'number', min: 0, max: 100, optional: true } },
  },
  mmr: { type: 'object', optional: true, strict: 'remove', props: { lambda: { type: 'number', min: 0, max: 1 } } },
  alias: { type: 'string', optional: true, max: 128 },
  filters: {
    type: 'object',
    optional: true,
    strict: 'remove',
    props: {
      tags: stringList,
      sourceIds: stringList,
      documentIds: { type: 'array', optional: true, max: 100, items: { type: 'string', pattern: UUID_PATTERN } },
      langs: stringList,
      mimes: stringList,
    },
  },
};

const HIT = {
  type: 'object',
  required: ['chunkId', 'documentId', 'score', 'text'],
  properties: { chunkId: { type: 'string' }, documentId: { type: 'string' }, score: { type: 'number' }, text: { type: 'string' } },
};

/**
 * POST /api/v1/search: hybrid search over the caller's tenant (any role). Other
 * services (RAG chat, the OpenAI-compatible API) call `api.search` with the same
 * meta, so the tenant always comes from the verified token, never from params.
 */
export function searchRoutes(runtime: Runtime): ApiRouteModule {
  const knex = async () => (await runtime.stores.db()).knex;
  const lexicalIndex = new LexicalIndexCache({ knex, settings: { budgetBytes: runtime.config.search.lexicalMemoryBytes }, logger: runtime.logger });
  runtime.metrics?.reportLexicalPostings(() => ({ bytes: lexicalIndex.bytes, tenants: lexicalIndex.tenants, reads: lexicalIndex.lookups }));
  const search = new HybridSearch({
    knex,
    vectors: () => runtime.stores.vectors(),
    activeEmbedModels: async () => (await runtime.stores.repos()).models.listActive('embed'),
    settings: runtime.config.search,
    logger: runtime.logger,
    lexicalIndex,
  });

  // While emb does not answer (killed, partitioned), the query embedding is not waited
  // for: after one call timed out or found no emb, searches skip the dense leg at once
  // (answering lexical-only, `degraded`) and a single call in the background checks
  // whether emb is back; its success ends the skipping. Without this every search
  // would wait the whole leg timeout until the broker notices the node is gone.
  let embDown = false;
  let probing = false;
  // The query embedding's own deadline, from its observed latency (lib/search/deadline.ts).
  // Its ceiling is SEARCH_EMBED_TIMEOUT_MS, not the leg timeout: a hybrid search can answer
  // from its lexical leg, and the first searches of a process (no samples yet) are exactly
  // the ones a partition catches; with the leg timeout as ceiling they waited 2 s.
  const { embedFloorMs, embedTimeoutMs, legTimeoutMs } = runtime.config.search;
  const embedCeilingMs = Math.min(embedTimeoutMs, legTimeoutMs);
  const embedDeadline = new AdaptiveDeadline({ floorMs: Math.min(embedFloorMs, embedCeilingMs), ceilingMs: embedCeilingMs });
  const embGone = (err: unknown) => ['RequestTimeoutError', 'ServiceNotAvailableError', 'ServiceNotFoundError'].includes((err as Error)?.name);

  return {
    endpoints: [
      endpoint<SearchParams>({
        method: 'POST',
        path: '/api/v1/search',
        permission: 'search',
        summary: 'Hybrid (lexical + dense) search over the caller\'s tenant',
        duringMaintenance: true,
        params: SEARCH_PARAMS,
        response: { schema: { type: 'object', required: ['hits'], properties: { hits: { type: 'array', items: HIT }, degraded: {} } } },
        errors: ['EMPTY_QUERY', 'QUERY_TOO_LONG', 'UNKNOWN_EMBEDDING_ALIAS', 'SEARCH_UNAVAILABLE'],
        action: 'search',
        async handler(ctx: RagmeshContext<SearchParams>): Promise<SearchResult> {
          const auth = ctx.meta.auth;
          if (!auth) throw appError('MISSING_TOKEN', 'search needs an authenticated caller');
          const calls: EmbedCalls = {
            async embedQuery(alias, text) {
              const embed = (timeout: number) => ctx.call('emb.embed', { alias, texts: [text], kind: 'query' } satisfies EmbedParams, { timeout }) as Promise<EmbedResult>;
              // A dense-only search has no lexical leg to answer with: cutting its embedding
              // short (or skipping it) turns one slow embedding into a failed request, so it
              // waits up to the leg timeout; the short deadline is for hybrid's sake.
              const denseOnly = ctx.params.mode === 'dense';
              if (embDown && !denseOnly) {
                if (!probing) {
                  probing = true;
                  // The probe may take the whole leg timeout: it only decides when to stop skipping.
                  void embed(legTimeoutMs).then(
                    () => (embDown = false),
                    () => undefined,
                  ).finally(() => (probing = false));
                }
                throw appError('SERVICE_UNAVAILABLE', 'emb did not answer a moment ago; the dense leg is skipped until it does');
              }
              const started = performance.now();
              const deadlineMs = denseOnly ? legTimeoutMs : embedDeadline.ms;
              try {
                const res = await embed(deadlineMs);
                embedDeadline.observe(performance.now() - started);
                return { alias: res.alias, version: res.version, vector: res.vectors[0]! };
              } catch (err) {
                if (embGone(err)) {
                  embDown = true;
                  runtime.logger.warn(
                    { err: (err as Error).name, waitedMs: Math.round(performance.now() - started), deadlineMs, samples: embedDeadline.sampleCount },
                    'the query embedding did not answer; dense legs are skipped until emb answers again',
                  );
                }
                throw err;
              }
            },
            async embedPassages(alias, version, texts) {
              const res = (await ctx.call('emb.embed', { alias, version, texts, kind: 'passage' } satisfies EmbedParams, { timeout: legTimeoutMs })) as EmbedResult;
              return res.vectors;
            },
          };
          return search.search(tenantScope(auth.tenantId), ctx.params, calls);
        },
      }),
    ],
    // A build running in the background would read a database that closes next.
    stopped: () => lexicalIndex.close(),
  };
}
