import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ServiceSchema } from 'moleculer';
import { ExtractiveBackend } from '../../lib/llm/extractive.ts';
import { Gate } from '../../lib/llm/gate.ts';
import { OpenAiCompatibleBackend } from '../../lib/llm/openai.ts';
import { LLM_ABORT_EVENT, type ChatMessage, type GenerateEvent, type LlmBackend, type LlmSource } from '../../lib/llm/types.ts';
import { readinessAction, type RagmeshContext, type Runtime } from '../../lib/runtime/service-kit.ts';

export interface GenerateParams {
  /** Chosen by the caller, so it can abort the generation from any node. */
  generationId: string;
  messages: ChatMessage[];
  sources?: LlmSource[];
  /** A RAG answer: with no sources it says the documents do not answer, rather than chatting. */
  grounded?: boolean;
  maxTokens?: number;
}

/** A line of the generate stream: a GenerateEvent, or the error that ended it. */
export type StreamLine = GenerateEvent | { type: 'error'; code: string; message: string };

export function createBackend(runtime: Runtime): LlmBackend {
  const { llm } = runtime.config;
  return llm.backend === 'openai' ? new OpenAiCompatibleBackend(llm.url!, llm.model, llm.apiKey) : new ExtractiveBackend();
}

/**
 * Chat and completion. `llm.generate` answers with a stream of NDJSON lines (tokens,
 * then `done` with usage and citations); Moleculer carries it over the transporter.
 * Closing the stream does not reach another process, so callers abort explicitly
 * with the `llm.abort` event; the generation then stops at its next token.
 */
export default function llmService(runtime: Runtime): ServiceSchema {
  const backend = createBackend(runtime);
  const gate = new Gate(runtime.config.llm.concurrency, runtime.config.llm.queueLimit, 'llm');
  const running = new Map<string, AbortController>();

  return {
    name: 'llm',
    actions: {
      readiness: readinessAction('llm', runtime),

      info: {
        handler: () => ({ backend: backend.name, version: backend.version, maxTokens: runtime.config.llm.maxTokens, ...gate.load }),
      },

      generate: {
        params: {
          generationId: { type: 'string', min: 8, max: 64 },
          messages: {
            type: 'array',
            min: 1,
            max: 200,
            items: { type: 'object', strict: 'remove', props: { role: { type: 'enum', values: ['system', 'user', 'assistant'] }, content: { type: 'string', max: 100_000 } } },
          },
          sources: {
            type: 'array',
            optional: true,
            max: 100,
            items: {
              type: 'object',
              strict: 'remove',
              props: {
                n: 'number',
                chunkId: 'string',
                documentId: 'string',
                title: { type: 'string', nullable: true, optional: true },
                page: { type: 'number', nullable: true, optional: true },
                text: { type: 'string', max: 100_000 },
              },
            },
          },
          grounded: { type: 'boolean', optional: true },
          maxTokens: { type: 'number', integer: true, min: 1, optional: true },
        },
        async handler(ctx: RagmeshContext<GenerateParams>) {
          const release = await gate.acquire();
          const abort = new AbortController();
          running.set(ctx.params.generationId, abort);
          const out = new PassThrough();
          out.on('close', () => abort.abort());
          const maxTokens = Math.min(ctx.params.maxTokens ?? runtime.config.llm.maxTokens, runtime.config.llm.maxTokens);
          const write = async (line: StreamLine) => {
            if (out.destroyed) return;
            if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
          };
          void (async () => {
            try {
              for await (const event of backend.generate({ messages: ctx.params.messages, sources: (ctx.params.sources ?? []) as LlmSource[], grounded: ctx.params.grounded ?? false, maxTokens, signal: abort.signal })) {
                if (abort.signal.aborted) break;
                await write(event);
              }
            } catch (err) {
              const e = err as { type?: string; message?: string };
              runtime.logger.warn({ err, generationId: ctx.params.generationId }, 'generation failed');
              await write({ type: 'error', code: typeof e.type === 'string' ? e.type : 'LLM_ERROR', message: e.message ?? 'generation failed' });
            } finally {
              running.delete(ctx.params.generationId);
              release();
              out.end();
            }
          })();
          return out;
        },
      },
    },

    events: {
      [LLM_ABORT_EVENT]: {
        handler(ctx: RagmeshContext<{ generationId: string }>) {
          running.get(ctx.params.generationId)?.abort();
        },
      },
    },
  };
}
