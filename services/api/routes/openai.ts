import { randomUUID } from 'node:crypto';
import { appError } from '../../../lib/errors.ts';
import { approximateTokens } from '../../../lib/chunking/index.ts';
import type { Answerer, AnswerResult } from '../answering.ts';
import type { ChatMessage } from '../../../lib/llm/types.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import type { EmbedResult } from '../../emb/emb.service.ts';
import { endpoint, type ApiRouteModule, type StreamCall } from './module.ts';

/** `ragmesh`: answers grounded in the caller's documents; `ragmesh-chat`: the model alone. */
const CHAT_MODELS = { ragmesh: { rag: true }, 'ragmesh-chat': { rag: false } } as const;

interface CompletionParams {
  model: string;
  messages: Array<{ role: ChatMessage['role']; content: string | Array<{ text?: string }> }>;
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream_options?: { include_usage?: boolean };
}

/** The part of OpenAI's request ragmesh reads; other fields (temperature, …) pass unread. */
const COMPLETION_PARAMS = {
  model: 'string',
  messages: {
    type: 'array',
    min: 1,
    max: 200,
    items: {
      type: 'object',
      props: {
        role: { type: 'enum', values: ['system', 'user', 'assistant'] },
        content: [{ type: 'string' }, { type: 'array', items: { type: 'object', props: { text: { type: 'string', optional: true } } } }],
      },
    },
  },
  stream: { type: 'boolean', optional: true },
  max_tokens: { type: 'number', integer: true, positive: true, optional: true },
  max_completion_tokens: { type: 'number', integer: true, positive: true, optional: true },
  stream_options: { type: 'object', optional: true, props: { include_usage: { type: 'boolean', optional: true } } },
};

/**
 * The OpenAI-compatible API under /v1, authenticated with the same JWT as a bearer
 * key, so the official `openai` client works against ragmesh unchanged:
 * `/v1/chat/completions` (stream or not), `/v1/embeddings`, `/v1/models`. Everything
 * stays inside the caller's tenant: retrieval and answers go through `api.search`.
 */
export function openAiRoutes(runtime: Runtime, answerer: Answerer): ApiRouteModule {
  const completions = async ({ res, ctx, params: body }: StreamCall<CompletionParams>): Promise<void> => {
      const model = body.model;
      const mode = CHAT_MODELS[model as keyof typeof CHAT_MODELS];
      if (!mode) throw appError('MODEL_NOT_FOUND', `Unknown model "${model.slice(0, 64)}"; use ${Object.keys(CHAT_MODELS).join(' or ')}`);
      const messages: ChatMessage[] = body.messages.map(({ role, content }) => ({ role, content: typeof content === 'string' ? content : content.map((p) => p.text ?? '').join('') }));
      const maxTokens = body.max_tokens ?? body.max_completion_tokens;
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
          const result = await answerer.answer(ctx, kv, scope, messages, { rag: mode.rag, maxTokens }, { ready, sources: () => undefined, token: (text) => chunk({ content: text }, null) }, abort.signal);
          if (!result) return;
          chunk({}, result.finishReason, { ragmesh: { citations: result.citations, cached: result.cached } });
          if (body.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageOf(result) })}\n\n`);
          res.end('data: [DONE]\n\n');
        } catch (err) {
          if (!started) throw err;
          const e = err as { message?: string; type?: string };
          res.end(`data: ${JSON.stringify({ error: { message: e.message ?? 'failed', code: e.type ?? 'INTERNAL' } })}\n\n`);
        }
        return;
      }

      const result = await answerer.answer(ctx, kv, scope, messages, { rag: mode.rag, maxTokens }, { sources: () => undefined, token: () => undefined }, abort.signal);
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
  };

  return {
    endpoints: [
      endpoint({
        method: 'GET',
        path: '/v1/models',
        permission: 'openai.models',
        summary: 'OpenAI-compatible: the chat models and active embedding aliases',
        response: { schema: { type: 'object', required: ['object', 'data'], properties: { object: { const: 'list' }, data: { type: 'array', items: { type: 'object', required: ['id', 'object'], properties: { id: { type: 'string' }, object: { const: 'model' } } } } } } },
        action: 'openai.models',
        async handler() {
          const embed = await (await runtime.stores.repos()).models.listActive('embed');
          const data = [
            ...Object.keys(CHAT_MODELS).map((id) => ({ id, object: 'model', created: 0, owned_by: 'ragmesh' })),
            ...embed.map(({ flag }) => ({ id: flag.alias, object: 'model', created: 0, owned_by: 'ragmesh' })),
          ];
          return { object: 'list', data };
        },
      }),
      endpoint<{ model: string; input: string | string[] }>({
        method: 'POST',
        path: '/v1/embeddings',
        permission: 'openai.embeddings',
        summary: 'OpenAI-compatible embeddings with an active embedding alias as the model',
        // Embeddings are computed, not stored.
        duringMaintenance: true,
        params: { model: 'string', input: [{ type: 'string', max: 100_000 }, { type: 'array', items: { type: 'string', max: 100_000 }, min: 1, max: 2048 }] },
        response: { schema: { type: 'object', required: ['object', 'data', 'model', 'usage'], properties: { object: { const: 'list' }, model: { type: 'string' }, data: { type: 'array', items: { type: 'object', required: ['embedding', 'index'], properties: { embedding: { type: 'array', items: { type: 'number' } }, index: { type: 'integer' } } } }, usage: { type: 'object' } } } },
        errors: ['MODEL_NOT_LOADED', 'EMB_STARTING', 'BATCH_TOO_LARGE'],
        action: 'openai.embeddings',
        async handler(ctx) {
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
      }),
      endpoint<CompletionParams>({
        method: 'POST',
        path: '/v1/chat/completions',
        permission: 'openai.chat',
        summary: 'OpenAI-compatible chat completions (stream or not); `ragmesh` answers from the documents, `ragmesh-chat` is the model alone',
        // Answers are computed, not stored.
        duringMaintenance: true,
        params: COMPLETION_PARAMS,
        response: { schema: { type: 'object', required: ['id', 'object', 'choices'], properties: { id: { type: 'string' }, object: { enum: ['chat.completion', 'chat.completion.chunk'] }, choices: { type: 'array' }, usage: { type: 'object' } } } },
        errors: ['MODEL_NOT_FOUND', 'LLM_BUSY', 'LLM_MODEL_NOT_READY', 'LLM_PROMPT_TOO_LONG'],
        // Streamed or not, an answer holds a generation slot as long as a chat answer does: the same pool.
        streamCap: 'answer',
        stream: completions,
      }),
    ],
  };
}

const usageOf = (r: AnswerResult) => ({ prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.promptTokens + r.usage.completionTokens });
