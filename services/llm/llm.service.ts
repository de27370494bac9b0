import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ServiceSchema } from 'moleculer';
import path from 'node:path';
import { appError } from '../../lib/errors.ts';
import { ExtractiveBackend } from '../../lib/llm/extractive.ts';
import { Gate } from '../../lib/llm/gate.ts';
import { LlamaCppBackend, type ThreadTrialMedians } from '../../lib/llm/llama.ts';
import { OpenAiCompatibleBackend } from '../../lib/llm/openai.ts';
import { LLM_ABORT_EVENT, type ChatMessage, type GenerateEvent, type LlmBackend, type LlmSource } from '../../lib/llm/types.ts';
import { MODELS_SWITCHED_EVENT, modelLoader, modelsRepository, type ModelsSwitchedPayload } from '../../lib/models/runtime-access.ts';
import { readinessAction, type RagmeshContext, type Readiness, type Runtime } from '../../lib/runtime/service-kit.ts';

export interface GenerateParams {
  /** Chosen by the caller, so it can abort the generation from any node. */
  generationId: string;
  messages: ChatMessage[];
  sources?: LlmSource[];
  /** A RAG answer: with no sources it says the documents do not answer, rather than chatting. */
  grounded?: boolean;
  maxTokens?: number;
}

/** Tokens that follow a chunk sent less than this long ago are held and sent with the next one (see llm.generate). */
export const TOKEN_BATCH_MS = 5;

/**
 * llm.generate answers (opens its stream) with the first line written, or after this long
 * without one (a long prompt still being processed), so the call does not near its timeout.
 */
export const FIRST_LINE_WAIT_MS = 1000;

/** A line of the generate stream: a GenerateEvent, or the error that ended it. */
export type StreamLine = GenerateEvent | { type: 'error'; code: string; message: string };

export interface LlmInfo {
  backend: string;
  version: string;
  maxTokens: number;
  active: number;
  waiting: number;
  /** Generations producing tokens on this node right now. */
  running: number;
  /** Tokens streamed by this node since it started. */
  tokensStreamed: number;
  /** llama: the CPU threads the answer's tokens are made on (LLM_THREADS, or the fastest in timed trials when 0). */
  threads?: number;
  /** llama: the CPU threads a prompt is read on (LLM_THREADS, or the fastest in timed trials when 0). */
  promptThreads?: number;
  /** llama with LLM_THREADS=0: median ms of the last trial by thread count, reading its prompt and per step after it. */
  threadTrials?: ThreadTrialMedians | null;
  /** llama with LLM_THREADS=0: the thread counts are being timed again (generations wait for it). */
  retimingThreads?: boolean;
  /** llama with LLM_THREADS=0: by thread count, the median over recent answers of their mean ms a step (what `threads` is chosen by). */
  stepMs?: Record<number, number> | null;
}

/** The backends that need no model file; `llama` is loaded from the models bucket (see loadLlama). */
export function createBackend(runtime: Runtime): LlmBackend {
  const { llm } = runtime.config;
  return llm.backend === 'openai' ? new OpenAiCompatibleBackend(llm.url!, llm.model, llm.apiKey) : new ExtractiveBackend();
}

/**
 * The active version of the `llm` model LLM_MODEL names, copied from the models bucket
 * and verified file by file (SHA-256) before llama.cpp opens it.
 */
export async function loadLlama(runtime: Runtime, version?: string): Promise<LlamaCppBackend> {
  const { llm } = runtime.config;
  const repo = await modelsRepository(runtime);
  const active = version ?? (await repo.getActive(llm.model))?.flag.activeVersion;
  if (!active) throw appError('MODEL_NOT_FOUND', `No active version of the llm model "${llm.model}" (LLM_MODEL); publish one and switch to it`);
  const row = await repo.get(llm.model, active);
  if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${llm.model}@${active} is not registered`);
  if (row.manifest.kind !== 'llm') throw appError('MODEL_NOT_FOUND', `${llm.model}@${active} is a ${row.manifest.kind} model, not an llm`);
  const ggufs = row.manifest.files.filter((f) => f.path.toLowerCase().endsWith('.gguf'));
  if (ggufs.length !== 1) throw appError('MODEL_NOT_FOUND', `${llm.model}@${active} must hold exactly one .gguf file (has ${ggufs.length})`);
  const folder = await (await modelLoader(runtime)).materialize(row.manifest);
  return LlamaCppBackend.load({
    modelPath: path.join(folder, ...ggufs[0]!.path.split('/')),
    model: `${llm.model}@${active}`,
    contextSize: llm.contextSize,
    slots: llm.concurrency,
    threads: llm.threads,
    onStepThreads: (moved) => runtime.logger.info({ model: `${llm.model}@${active}`, ...moved }, 'llm step threads changed'),
    // Logged as it starts, not only as it ends: its trial runs on the cores answers use (bench:llm waits for it).
    onThreadsRetiming: (retiming) => runtime.logger.info({ model: `${llm.model}@${active}`, ...retiming }, 'llm threads re-timing'),
    onThreadsRetimed: ({ error, ...retimed }) =>
      error
        ? runtime.logger.warn({ err: error, model: `${llm.model}@${active}`, ...retimed }, 'llm thread count could not be timed again; the count in use stays')
        : runtime.logger.info({ model: `${llm.model}@${active}`, ...retimed }, 'llm threads re-timed'),
  });
}

/**
 * Chat and completion. `llm.generate` answers with a stream of NDJSON lines (tokens,
 * then `done` with usage and citations); Moleculer carries it over the transporter.
 * Closing the stream does not reach another process, so callers abort explicitly
 * with the `llm.abort` event; the generation then stops at its next token.
 */
export default function llmService(runtime: Runtime): ServiceSchema {
  const usesModelFile = runtime.config.llm.backend === 'llama';
  let backend: LlmBackend | null = usesModelFile ? null : createBackend(runtime);
  let loadError: string | null = null;
  const gate = new Gate(runtime.config.llm.concurrency, runtime.config.llm.queueLimit, 'llm');
  const running = new Map<string, AbortController>();
  // An abort can arrive while its generation still waits for a slot (or before its call
  // does): remembered for a minute, so the generation never starts.
  const abortedEarly = new Map<string, number>();
  let tokensStreamed = 0;
  const storeReadiness = readinessAction('llm', runtime);

  const serving = (): LlmBackend => {
    if (backend) return backend;
    throw appError('LLM_MODEL_NOT_READY', loadError ? `The llm model failed to load: ${loadError}` : 'The llm model is still loading');
  };

  /** Loaded by llm.warm before a switch, swapped in when the switch event arrives. */
  let warmed: { version: string; backend: Promise<LlamaCppBackend> } | null = null;

  /** Loads a llama version and only then swaps it in; the previous one finishes its generations. */
  async function activateLlama(version?: string): Promise<void> {
    try {
      const ready = version !== undefined && warmed?.version === version ? warmed.backend : null;
      if (ready) warmed = null;
      const next = await (ready ?? loadLlama(runtime, version));
      const previous = backend as LlamaCppBackend | null;
      backend = next;
      loadError = null;
      runtime.logger.info({ model: next.version, threads: next.threads, promptThreads: next.promptThreads, threadTrials: next.threadTrials }, 'llm model loaded');
      if (previous) void previous.dispose().catch((err: unknown) => runtime.logger.warn({ err }, 'disposing the previous llm model failed'));
    } catch (err) {
      loadError = (err as Error).message;
      throw err;
    }
  }

  return {
    name: 'llm',
    actions: {
      readiness: {
        visibility: 'public',
        async handler(ctx: RagmeshContext): Promise<Readiness> {
          const base = await storeReadiness.handler(ctx);
          if (!usesModelFile) return base;
          const ok = backend !== null;
          const checks = { ...base.checks, model: { ok, ms: 0, ...(ok ? {} : { error: loadError ?? 'loading' }) } };
          return { ...base, ready: base.ready && ok, checks };
        },
      },

      /**
       * The first half of an llm switch, on every llm node: load the version (verified
       * file by file) and open it, without serving it yet. A node that cannot load it
       * fails the call, and the maintenance service then leaves the flag where it was.
       */
      warm: {
        params: { alias: 'string', version: 'string' },
        async handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<{ nodeID: string; loaded: boolean; model: string | null }> {
          const { alias, version } = ctx.params;
          const nodeID = ctx.broker.nodeID;
          if (!usesModelFile || alias !== runtime.config.llm.model) return { nodeID, loaded: false, model: null };
          if (backend?.version === `${alias}@${version}`) return { nodeID, loaded: true, model: backend.version };
          if (warmed?.version !== version) {
            const previous = warmed;
            const pending = loadLlama(runtime, version);
            warmed = { version, backend: pending };
            pending.catch(() => warmed?.backend === pending && (warmed = null));
            if (previous) void previous.backend.then((b) => b.dispose()).catch(() => undefined);
          }
          const loaded = await warmed!.backend;
          return { nodeID, loaded: true, model: loaded.version };
        },
      },

      info: {
        handler(): LlmInfo {
          const current = serving();
          return { backend: current.name, version: current.version, maxTokens: runtime.config.llm.maxTokens, ...gate.load, running: running.size, tokensStreamed, ...(current instanceof LlamaCppBackend && { threads: current.threads, promptThreads: current.promptThreads, threadTrials: current.threadTrials, retimingThreads: current.retimingThreads, stepMs: current.stepMs }) };
        },
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
          const current = serving();
          const release = await gate.acquire();
          const abort = new AbortController();
          if (abortedEarly.delete(ctx.params.generationId)) abort.abort();
          running.set(ctx.params.generationId, abort);
          // Object mode, strings: Moleculer sends each chunk as a JSON string. A byte-mode
          // stream's Buffer goes over as JSON's {"type":"Buffer","data":[123,34,…]}, up to four
          // characters per byte to write, parse and copy back on each side.
          const out = new PassThrough({ objectMode: true });
          // The reader went away (or the transporter gave up on the stream) before the
          // generation finished. Not after: an abort builds a DOMException with its stack,
          // about 0.3 ms of the llm's CPU per answer for nothing to stop.
          let finished = false;
          out.on('close', () => finished || abort.abort());
          const maxTokens = Math.min(ctx.params.maxTokens ?? runtime.config.llm.maxTokens, runtime.config.llm.maxTokens);
          // Each chunk written to `out` becomes one message over the transporter, and the api
          // parses every message that has arrived before it gets to the first token: the first
          // token goes out at once, later ones that come within TOKEN_BATCH_MS of the last
          // chunk wait for it and go out together (the last line flushes them).
          let held = '';
          let heldTimer: NodeJS.Timeout | null = null;
          let lineWritten = (): void => undefined;
          const firstLine = new Promise<void>((resolve) => (lineWritten = resolve));
          let sentAt = -Infinity;
          const flushHeld = () => {
            if (heldTimer) clearTimeout(heldTimer);
            heldTimer = null;
            if (!held || out.destroyed) return;
            sentAt = performance.now();
            out.write(held);
            held = '';
            lineWritten();
          };
          const write = async (line: StreamLine) => {
            if (out.destroyed) return;
            // A reader that goes away while the buffer is full never drains: the abort ends the wait.
            if (out.writableNeedDrain) await once(out, 'drain', { signal: abort.signal }).catch(() => undefined);
            held += `${JSON.stringify(line)}\n`;
            const wait = TOKEN_BATCH_MS - (performance.now() - sentAt);
            if (line.type === 'token' && (heldTimer || wait > 0)) heldTimer ??= setTimeout(flushHeld, wait);
            else flushHeld();
          };
          const started = performance.now();
          let tokens = 0;
          let firstTokenAt = 0;
          const backendLabel = { backend: runtime.config.llm.backend };
          let outcome: 'done' | 'aborted' | 'failed' = 'aborted';
          void (async () => {
            try {
              if (abort.signal.aborted) return;
              for await (const event of current.generate({ messages: ctx.params.messages, sources: (ctx.params.sources ?? []) as LlmSource[], grounded: ctx.params.grounded ?? false, maxTokens, signal: abort.signal })) {
                if (abort.signal.aborted) break;
                if (event.type === 'token') {
                  if (++tokens === 1) {
                    firstTokenAt = performance.now();
                    runtime.metrics?.llmFirstToken.observe(backendLabel, (firstTokenAt - started) / 1000);
                  }
                  tokensStreamed++;
                } else outcome = 'done';
                await write(event);
              }
            } catch (err) {
              outcome = 'failed';
              const e = err as { type?: string; message?: string };
              runtime.logger.warn({ err, generationId: ctx.params.generationId }, 'generation failed');
              await write({ type: 'error', code: typeof e.type === 'string' ? e.type : 'LLM_ERROR', message: e.message ?? 'generation failed' });
            } finally {
              running.delete(ctx.params.generationId);
              release();
              if (runtime.metrics && tokens > 0) {
                runtime.metrics.llmTokens.inc(backendLabel, tokens);
                const seconds = (performance.now() - firstTokenAt) / 1000;
                // Tokens after the first over the time they took: the decode speed, without prompt processing.
                if (tokens > 1 && seconds > 0) runtime.metrics.llmTokensPerSecond.observe(backendLabel, (tokens - 1) / seconds);
              }
              // Tokens held for an aborted generation have no reader left.
              if (abort.signal.aborted) held = '';
              flushHeld();
              finished = true;
              out.end();
              lineWritten();
              // A generation that ran to its end is in the metrics (tokens, first token,
              // tokens/s): its line is debug. Aborted and failed ones stay in the log. A
              // line is a synchronous write to stdout: about 0.4 ms of CPU per answer here.
              const entry = { generationId: ctx.params.generationId, outcome, tokens, ms: Math.round(performance.now() - started) };
              if (outcome === 'done') runtime.logger.debug(entry, 'generation ended');
              else runtime.logger.info(entry, 'generation ended');
            }
          })();
          // The stream is answered with its first line rather than at once: opened at once,
          // its opening crossed RabbitMQ and the api sent the client its SSE headers while
          // llama.cpp processed the prompt, waking three processes on the two cores its threads
          // held. Now the opening and the first token leave in one pass (docs/sse.md).
          let cap: NodeJS.Timeout | undefined;
          await Promise.race([firstLine, new Promise<void>((resolve) => (cap = setTimeout(resolve, FIRST_LINE_WAIT_MS)))]);
          clearTimeout(cap);
          return out;
        },
      },
    },

    events: {
      [LLM_ABORT_EVENT]: {
        handler(ctx: RagmeshContext<{ generationId: string }>) {
          const generation = running.get(ctx.params.generationId);
          if (generation) return generation.abort();
          const now = Date.now();
          for (const [id, at] of abortedEarly) if (now - at > 60_000) abortedEarly.delete(id);
          if (abortedEarly.size < 10_000) abortedEarly.set(ctx.params.generationId, now);
        },
      },

      [MODELS_SWITCHED_EVENT]: {
        async handler(ctx: RagmeshContext<ModelsSwitchedPayload>): Promise<void> {
          const { alias, kind, version } = ctx.params;
          if (!usesModelFile || kind !== 'llm' || alias !== runtime.config.llm.model) return;
          await activateLlama(version).catch((err: unknown) =>
            runtime.logger.error({ err, alias, version }, 'switch to a new llm model failed; the previous version keeps serving'),
          );
        },
      },
    },

    async started() {
      if (!usesModelFile) return;
      // Not awaited: a missing or refused model keeps the node up, not ready, and retried by a switch.
      void activateLlama().catch((err: unknown) => runtime.logger.error({ err, model: runtime.config.llm.model }, 'llm model failed to load'));
    },

    async stopped() {
      for (const generation of running.values()) generation.abort();
      if (backend instanceof LlamaCppBackend) await backend.dispose();
      backend = usesModelFile ? null : backend;
    },
  };
}
