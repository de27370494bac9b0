/** Broadcast with { generationId } to stop a generation on whichever llm node runs it. */
export const LLM_ABORT_EVENT = 'llm.abort';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A retrieved chunk handed to the model, numbered as it is cited: [1], [2], … */
export interface LlmSource {
  n: number;
  chunkId: string;
  documentId: string;
  title: string | null;
  page: number | null;
  text: string;
}

export interface GenerateRequest {
  messages: ChatMessage[];
  sources: LlmSource[];
  /** The answer must come from the sources (RAG), even when retrieval found none. */
  grounded: boolean;
  /** Budget of generated tokens; generation stops there with finishReason 'length'. */
  maxTokens: number;
  signal: AbortSignal;
}

export interface Usage {
  /** Tokens the model read for the prompt: llama counts what it evaluated (chat template markup included), openai what the server reports, extractive an estimate. */
  promptTokens: number;
  completionTokens: number;
}

export type GenerateEvent =
  | { type: 'token'; text: string }
  | { type: 'done'; usage: Usage; citations: number[]; finishReason: 'stop' | 'length' };

/** A way to produce an answer, token by token. */
export interface LlmBackend {
  readonly name: string;
  /** Part of answer cache keys: a new model or backend version makes new answers. */
  readonly version: string;
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
}
