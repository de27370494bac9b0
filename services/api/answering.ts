import { randomUUID } from 'node:crypto';
import { eachNdjson } from '../../lib/streams.ts';
import type { Readable } from 'node:stream';
import type { KeyValueStore } from '../../lib/ports/key-value.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import type { SearchFilters, SearchHit, SearchResult } from '../../lib/search/types.ts';
import type { RagmeshContext } from '../../lib/runtime/service-kit.ts';
import { appError, isErrorCode } from '../../lib/errors.ts';
import { degradable } from '../../lib/adapters/kv/degradable.ts';
import { answerCacheKey, storeAnswer } from '../../lib/llm/answer-cache.ts';
import { LLM_ABORT_EVENT, type ChatMessage, type GenerateEvent, type LlmSource, type Usage } from '../../lib/llm/types.ts';

export interface Citation {
  n: number;
  chunkId: string;
  documentId: string;
  title: string | null;
  page: number | null;
}

/** A retrieved passage as the asker sees it: the citation, its snippet and the rank each search leg gave it. */
export type ShownSource = Citation & { snippet: string; ranks: SearchHit['ranks'] };

export interface AnswerOptions {
  rag: boolean;
  filters?: SearchFilters;
  /** Chunks retrieved for the prompt. */
  topK?: number;
  maxTokens?: number;
}

export interface AnswerEvents {
  /**
   * The answer is coming (generation started, or found in the cache): the moment to send
   * response headers. Anything that fails before it (a busy llm: OVERLOADED) can still
   * be an ordinary HTTP error with its status and Retry-After.
   */
  ready?(): void;
  sources(sources: ShownSource[], degraded: SearchResult['degraded']): void;
  token(text: string): void;
}

export interface AnswerResult {
  content: string;
  usage: Usage;
  citations: Citation[];
  finishReason: 'stop' | 'length';
  cached: boolean;
  sources: LlmSource[];
  /** What the `sources` event showed, kept with the answer so its sources can be inspected later. */
  shown: ShownSource[];
}

/**
 * The RAG orchestration of the api service: one per api service (made in
 * ./routes/index.ts, shared by chat and the OpenAI-compatible routes), so the llm
 * version it remembers lives and dies with the service.
 */
export class Answerer {
  /** What backend version answers (part of cache keys); asked once every few seconds, not per answer. */
  private infoCache: { value: Promise<{ version: string }>; until: number } | null = null;

  /**
   * One answer, as chat (SSE) and the OpenAI-compatible API both give it: retrieve
   * (RAG) → cached answer, or generate on the llm service → tokens as they come. The
   * caller's AbortSignal (its client went away) aborts the generation on whichever llm
   * node runs it, by event: closing a stream does not cross the transporter.
   */
  async answer(
    ctx: RagmeshContext,
    store: KeyValueStore,
    scope: TenantScope,
    messages: ChatMessage[],
    options: AnswerOptions,
    events: AnswerEvents,
    signal: AbortSignal,
  ): Promise<AnswerResult | null> {
    // Without Redis the answer is generated, not looked up: the cache only saves work.
    const kv = degradable(store, 'answer-cache', { cache: true });
    const question = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    let hits: SearchHit[] = [];
    let degraded: SearchResult['degraded'] = null;
    if (options.rag) {
      const result = (await ctx.call('api.search', { query: question, limit: options.topK ?? 6, filters: options.filters })) as SearchResult;
      hits = result.hits;
      degraded = result.degraded;
    }
    const shown: ShownSource[] = hits.map((h, i) => ({ ...citationOf(h, i + 1), snippet: h.snippet, ranks: h.ranks }));
    const begin = () => {
      events.ready?.();
      if (options.rag) events.sources(shown, degraded);
    };
    const sources: LlmSource[] = hits.map((h, i) => ({ n: i + 1, chunkId: h.chunkId, documentId: h.documentId, title: h.title, page: h.page, text: h.text }));
    // RAG answers are cached (key: question + the chunks found + model version); a plain
    // chat answer depends on the conversation, so it is not (nor does it ask the version).
    const cacheKey = options.rag
      ? await answerCacheKey(kv, scope, {
          question,
          chunkIds: sources.map((s) => s.chunkId),
          documentIds: sources.map((s) => s.documentId),
          modelVersion: `${(await this.llmInfo(ctx)).version}:${options.maxTokens ?? 'default'}`,
        })
      : null;
    const cached = cacheKey ? await kv.get(cacheKey) : null;
    if (cached) {
      const hit = JSON.parse(cached) as Omit<AnswerResult, 'cached' | 'sources' | 'shown'>;
      begin();
      for (const piece of hit.content.match(/\S+\s*/g) ?? []) events.token(piece);
      return { ...hit, cached: true, sources, shown };
    }

    const generationId = randomUUID();
    const abort = () => void ctx.broadcast(LLM_ABORT_EVENT, { generationId });
    signal.addEventListener('abort', abort, { once: true });
    try {
      let stream: Readable;
      try {
        stream = (await ctx.call('llm.generate', { generationId, messages, sources, grounded: options.rag, maxTokens: options.maxTokens })) as Readable;
      } catch (err) {
        // A call that timed out while queued may still get its slot later: nobody would read that answer.
        abort();
        throw err;
      }
      if (signal.aborted) {
        stream.destroy();
        return null;
      }
      begin();
      let content = '';
      let done = null as Extract<GenerateEvent, { type: 'done' }> | null; // set in the callback: not narrowed to null
      // Each line as its message arrives (lib/streams.ts): the first token is sent in the turn that brought it.
      await eachNdjson<Line>(stream, (line) => {
        if (signal.aborted) return false; // the stream is destroyed
        if (line.type === 'token') {
          content += line.text;
          events.token(line.text);
        } else if (line.type === 'done') done = line;
        else if (line.type === 'error') throw appError(isErrorCode(line.code) ? line.code : 'LLM_ERROR', line.message);
        return true;
      });
      if (signal.aborted) return null;
      // The stream ended without its last line: the llm node went away mid-answer.
      if (!done) throw appError('LLM_STREAM_ENDED', 'The answer stopped before it was complete; ask again');
      const result = {
        content,
        usage: done.usage,
        citations: done.citations.map((n) => citationOf(hits[n - 1]!, n)),
        finishReason: done.finishReason,
      };
      if (cacheKey) await storeAnswer(kv, scope, cacheKey, sources.map((src) => src.documentId), JSON.stringify(result));
      return { ...result, cached: false, sources, shown };
    } finally {
      signal.removeEventListener('abort', abort);
    }
  }

  /** After an llm model switch: the next answer asks for the version again. */
  forgetLlmInfo(): void {
    this.infoCache = null;
  }

  private llmInfo(ctx: RagmeshContext): Promise<{ version: string }> {
    if (!this.infoCache || this.infoCache.until < Date.now()) {
      const value = ctx.call('llm.info') as Promise<{ version: string }>;
      this.infoCache = { value, until: Date.now() + 10_000 };
      value.catch(() => (this.infoCache = null));
    }
    return this.infoCache.value;
  }
}

function citationOf(hit: SearchHit, n: number): Citation {
  return { n, chunkId: hit.chunkId, documentId: hit.documentId, title: hit.title, page: hit.page };
}

type Line = GenerateEvent | { type: 'error'; code: string; message: string };

