import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appError } from '../../../lib/errors.ts';
import { approximateTokens } from '../../../lib/chunking/index.ts';
import { answer, type AnswerResult } from '../../../lib/llm/answering.ts';
import type { ChatMessage } from '../../../lib/llm/types.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { ModelsRepository } from '../../../lib/repositories/models.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import type { EmbedResult } from '../../emb/emb.service.ts';
import type { ApiRouteModule } from './module.ts';

/** `ragmesh`: answers grounded in the caller's documents; `ragmesh-chat`: the model alone. */
const CHAT_MODELS = { ragmesh: { rag: true }, 'ragmesh-chat': { rag: false } } as const;

interface GatewayReq extends IncomingMessage {
  $ctx: RagmeshContext;
  body?: Record<string, unknown>;
}

interface GatewayThis {
  sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void;
}

/**
 * The OpenAI-compatible API under /v1, authenticated with the same JWT as a bearer
 * key, so the official `openai` client works against ragmesh unchanged:
 * `/v1/chat/completions` (stream or not), `/v1/embeddings`, `/v1/models`. Everything
 * stays inside the caller's tenant: retrieval and answers go through `api.search`.
 */
export function openAiRoutes(runtime: Runtime): ApiRouteModule {
  const completions = function (this: GatewayThis, req: GatewayReq, res: ServerResponse) {
    void (async () => {
      const ctx = req.$ctx;
      const body = req.body ?? {};
      const model = typeof body.model === 'string' ? body.model : '';
      const mode = CHAT_MODELS[model as keyof typeof CHAT_MODELS];
      if (!mode) throw appError('MODEL_NOT_FOUND', `Unknown model "${model.slice(0, 64)}"; use ${Object.keys(CHAT_MODELS).join(' or ')}`);
      const messages = chatMessages(body.messages);
      const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : undefined;
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const kv = await runtime.stores.kv();
      const scope = tenantScope(ctx.meta.auth!.tenantId);

      if (body.stream === true) {
        let started = false;
        const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => {
          if (!started) {
            res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
            started = true;
          }
          res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`);
        };
        try {
          // The first chunk (and the headers) go out once the answer is coming: a busy llm is still a 503.
          const ready = () => chunk({ role: 'assistant', content: '' }, null);
          const result = await answer(ctx, kv, scope, messages, { rag: mode.rag, maxTokens }, { ready, sources: () => undefined, token: (text) => chunk({ content: text }, null) }, abort.signal);
          if (!result) return;
          chunk({}, result.finishReason, { ragmesh: { citations: result.citations, cached: result.cached } });
          const options = body.stream_options as { include_usage?: boolean } | undefined;
          if (options?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageOf(result) })}\n\n`);
          res.end('data: [DONE]\n\n');
        } catch (err) {
          if (!started) throw err;
          const e = err as { message?: string; type?: string };
          res.end(`data: ${JSON.stringify({ error: { message: e.message ?? 'failed', code: e.type ?? 'INTERNAL' } })}\n\n`);
        }
        return;
      }

      const result = await answer(ctx, kv, scope, messages, { rag: mode.rag, maxTokens }, { sources: () => undefined, token: () => undefined }, abort.signal);
      if (!result) return;
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: result.content }, finish_reason: result.finishReason }],
          usage: usageOf(result),
          ragmesh: { citations: result.citations, cached: result.cached },
        }),
      );
    })().catch((err: unknown) => {
      if (!res.headersSent) this.sendError(req, res, err);
      else res.end();
    });
  };

  return {
    routes: [
      {
        name: 'openai',
        path: '/v1',
        authentication: true,
        authorization: true,
        mappingPolicy: 'restrict',
        bodyParsers: { json: { limit: '2mb' }, urlencoded: false },
        aliases: {
          'GET models': 'api.openai.models',
          'POST embeddings': 'api.openai.embeddings',
          'POST chat/completions': completions,
        },
      },
    ],
    // Answers and embeddings are computed, not stored.
    reads: ['POST /v1/embeddings', 'POST /v1/chat/completions'],
    actions: {
      'openai.models': {
        async handler() {
          const embed = await new ModelsRepository((await runtime.stores.db()).knex).listActive('embed');
          const data = [
            ...Object.keys(CHAT_MODELS).map((id) => ({ id, object: 'model', created: 0, owned_by: 'ragmesh' })),
            ...embed.map(({ flag }) => ({ id: flag.alias, object: 'model', created: 0, owned_by: 'ragmesh' })),
          ];
          return { object: 'list', data };
        },
      },
      'openai.embeddings': {
        params: { model: 'string', input: [{ type: 'string', max: 100_000 }, { type: 'array', items: { type: 'string', max: 100_000 }, min: 1, max: 2048 }] },
        async handler(ctx: RagmeshContext<{ model: string; input: string | string[] }>) {
          const texts = Array.isArray(ctx.params.input) ? ctx.params.input : [ctx.params.input];
          const result = (await ctx.call('emb.embed', { alias: ctx.params.model, texts, kind: 'passage' })) as EmbedResult;
          const tokens = texts.reduce((sum, t) => sum + approximateTokens(t), 0);
          return {
            object: 'list',
            model: `${result.alias}@${result.version}`,
            data: result.vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })),
            usage: { prompt_tokens: tokens, total_tokens: tokens },
          };
        },
      },
    },
  };
}

function chatMessages(raw: unknown): ChatMessage[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 200) throw appError('INVALID_MESSAGES', '`messages` must be a non-empty array');
  return raw.map((m) => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p) => (p as { text?: string }).text ?? '').join('') : null;
    if ((role !== 'system' && role !== 'user' && role !== 'assistant') || text === null) {
      throw appError('INVALID_MESSAGES', 'Each message needs a role (system, user, assistant) and text content');
    }
    return { role, content: text };
  });
}

const usageOf = (r: AnswerResult) => ({ prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.promptTokens + r.usage.completionTokens });
