import { appError } from '../errors.ts';
import { approximateTokens } from '../chunking/index.ts';
import { sseEvents } from '../streams.ts';
import { citationsIn, ragMessages } from './prompt.ts';
import type { GenerateEvent, GenerateRequest, LlmBackend } from './types.ts';

/**
 * Any OpenAI-compatible server inside the operator's network (vLLM, llama.cpp server,
 * Ollama, or another ragmesh): /chat/completions with `stream: true`, read as SSE.
 */
export class OpenAiCompatibleBackend implements LlmBackend {
  readonly name = 'openai';
  readonly version: string;

  constructor(
    private readonly baseUrl: string,
    private readonly model: string,
    private readonly apiKey: string | null,
    private readonly sourceBudget = 2048,
  ) {
    this.version = `openai:${model}`;
  }

  async *generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    const { messages, used } = request.grounded || request.sources.length ? ragMessages(request.messages, request.sources, this.sourceBudget) : { messages: request.messages, used: [] };
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl.replace(/\/$/, '')}/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(this.apiKey && { Authorization: `Bearer ${this.apiKey}` }) },
        body: JSON.stringify({ model: this.model, messages, stream: true, max_tokens: request.maxTokens, stream_options: { include_usage: true } }),
        signal: request.signal,
      });
    } catch (err) {
      if (request.signal.aborted) return;
      throw appError('LLM_UNREACHABLE', `The LLM server is unreachable: ${(err as Error).message}`);
    }
    if (!response.ok || !response.body) {
      throw appError('LLM_ERROR', `The LLM server answered ${response.status}: ${(await response.text().catch(() => '')).slice(0, 300)}`);
    }
    let text = '';
    let usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
    let finish: string | null = null;
    // On abort, the body is cancelled through its reader: a read pending on a body that has
    // already arrived in full was seen to wait forever for an AbortError that never came
    // (the whole answer came in one batch, the test hung in CI), and cancel() ends it.
    const reader = response.body.getReader();
    const onAbort = () => void reader.cancel().catch(() => {});
    request.signal.addEventListener('abort', onAbort, { once: true });
    async function* bodyChunks(): AsyncIterable<Uint8Array> {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    }
    try {
      // The project's one SSE reader (lib/streams.ts), not the openai SDK: the backend needs
      // four fields of the chunks (delta, finish_reason, usage, error), and one more
      // dependency would bring its own fetch, retries and timeouts into a call whose
      // abort, deadline and error classes the llm service owns.
      for await (const { data } of sseEvents(bodyChunks())) {
        // Events already buffered when the caller hung up are not handed out.
        if (request.signal.aborted) return;
        // `[DONE]` and anything else that is not a JSON object carries no chunk.
        if (typeof data !== 'object' || data === null) continue;
        const event = data as { choices?: Array<{ delta?: { content?: string }; finish_reason?: string | null }>; usage?: typeof usage; error?: { message?: string } };
        // Servers report a failure after the stream started as a data line with `error`.
        if (event.error) throw appError('LLM_ERROR', `The LLM server failed mid-answer: ${String(event.error.message ?? 'unknown error').slice(0, 300)}`);
        if (event.usage) usage = event.usage;
        const choice = event.choices?.[0];
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (choice?.delta?.content) {
          text += choice.delta.content;
          yield { type: 'token', text: choice.delta.content };
        }
      }
    } catch (err) {
      if (request.signal.aborted) return;
      throw err;
    } finally {
      request.signal.removeEventListener('abort', onAbort);
      // A consumer that stopped early hangs up too; after the end this is a no-op.
      void reader.cancel().catch(() => {});
    }
    if (request.signal.aborted) return;
    yield {
      type: 'done',
      usage: {
        promptTokens: usage?.prompt_tokens ?? messages.reduce((sum, m) => sum + approximateTokens(m.content), 0),
        completionTokens: usage?.completion_tokens ?? approximateTokens(text),
      },
      citations: citationsIn(text, used.map((s) => s.n)),
      finishReason: finish === 'length' ? 'length' : 'stop',
    };
  }
}
