import type { ChatHistoryItem, ChatWrapper, Llama, LlamaChat, LlamaContext, LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import { appError } from '../errors.ts';
import { citationsIn, ragMessages } from './prompt.ts';
import { fastestThreads, median, readCpuBudget, STEP_CHOICE, StepCountChoice, THREAD_DRIFT, ThreadDrift, threadCandidates, usableCores, type StepChoiceOptions, type ThreadDriftOptions } from './threads.ts';
import type { ChatMessage, GenerateEvent, GenerateRequest, LlmBackend, LlmSource } from './types.ts';

export interface LlamaBackendOptions {
  /** A verified local copy of the GGUF file (see ModelLoader). */
  modelPath: string;
  /** `alias@version` of the model: part of answer cache keys. */
  model: string;
  /** Tokens each generation slot sees: prompt, sources and answer together. */
  contextSize: number;
  /** Generations at once; one context sequence each. */
  slots: number;
  /** 0 = the fastest counts in timed trials up to the CPUs the process really has, for prompts and for tokens apart (see timeThreads, ThreadCounts), timed again when answers drift far from the trial. */
  threads: number;
  /** LLM_THREADS=0: when the answers' speed calls for timing the counts again (tests shorten it). */
  threadDrift?: ThreadDriftOptions;
  /** LLM_THREADS=0: how answers' steps choose their count among those the trial kept (see StepCountChoice). */
  stepChoice?: StepChoiceOptions;
  /** LLM_THREADS=0: a new timing of the counts starts (for the log; it ends with onThreadsRetimed). */
  onThreadsRetiming?(event: { from: ThreadCounts; observedMsPerToken: number; trialMsPerToken: number }): void;
  /** LLM_THREADS=0: answers' steps moved to another count, faster in their own step times (for the log). */
  onStepThreads?(event: { from: number; to: number; stepMs: Record<number, number> }): void;
  /** LLM_THREADS=0: the counts were timed again while serving (for the log). */
  onThreadsRetimed?(event: ThreadsRetimed): void;
}

/**
 * llama.cpp's two thread counts: one for a batch of several tokens (a prompt), one for a
 * single token (each step of the answer). They are timed apart: on 2 cores a
 * Qwen2.5-0.5B-shaped model read a prompt 1.5–1.8 times faster on 2 threads, and made its
 * tokens 5–10 % faster on 1 (docs/sse.md).
 */
export interface ThreadCounts {
  prompt: number;
  decode: number;
}

/** Median ms of a timing by count: reading the trial's prompt, and each step after it. */
export interface ThreadTrialMedians {
  prompt: Record<number, number>;
  step: Record<number, number>;
}

export interface ThreadsRetimed {
  from: ThreadCounts;
  to: ThreadCounts;
  /** Median ms of the new trial by count. */
  threadTrials: ThreadTrialMedians;
  /** Decode ms per token of the answers that called for it (median), and of the old trial at the count in use. */
  observedMsPerToken: number;
  trialMsPerToken: number;
  error?: unknown;
}

let llamaRuntime: Promise<Llama> | null = null;

/**
 * The native runtime, once per process. CPU prebuilt binary only: `build: 'never'`
 * and `skipDownload` make a missing binary an error instead of a compile or a
 * download at run time, which these machines must never attempt.
 */
async function cpuLlama(): Promise<Llama> {
  if (!llamaRuntime) {
    llamaRuntime = import('node-llama-cpp').then(({ getLlama, LlamaLogLevel }) =>
      getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error }),
    );
    llamaRuntime.catch(() => (llamaRuntime = null));
  }
  return llamaRuntime;
}

/**
 * How the llm loads a GGUF file (bench:llm loads its raw baseline the same way).
 *
 * Read into the process's memory, not mapped: the file the llm opens is the copy
 * ModelLoader has just written to MODELS_CACHE_DIR, and generating from a mapping of
 * that fresh copy was 1.1–10× slower per token than from a mapping of an older file on this
 * (virtualised, 2-core) machine, in CPU time as well as wall clock: the same 25 prompt and 32
 * generated tokens, the same matrix kernel (ggml_vec_dot_q8_0_q8_0 ~87 % of samples), 2.5–18 s
 * of CPU against 1.4–2 s; the same backend reading the old file was as fast as raw
 * node-llama-cpp. Read into memory, the service's generations took 1.35–1.5 s of CPU, as raw's.
 * The cost: the weights count in the process's resident memory (a mapping's pages are shared
 * page cache), and a load reads the whole file.
 */
export const LLAMA_MODEL_LOAD = { useMmap: false } as const;

/** Tokens kept free for the chat template's own markup around the messages. */
const TEMPLATE_RESERVE = 64;

/**
 * One generation slot: a context sequence and the LlamaChat on it, made once at load and
 * reused by one answer after another. `cleared` settles once the previous answer's tokens
 * are erased from the sequence (started as that answer ends, so the erase is not part of
 * the next answer's time to first token).
 */
interface Slot {
  sequence: LlamaContextSequence;
  chat: LlamaChat;
  cleared: Promise<void>;
}

/**
 * A GGUF model run in-process by llama.cpp (node-llama-cpp) on CPU. Each generation
 * takes one of `slots` ready slots (a context sequence with its LlamaChat, made at load);
 * the llm service's Gate keeps at most `slots` running, so a slot is always free. Tokens
 * stream as llama.cpp produces them; the budget is llama.cpp's own `maxTokens`, abort is
 * its signal.
 *
 * A slot's sequence is emptied between answers: nothing of one answer (its prompt, its
 * tokens, their KV cache) is left for the next, which may be another user's. A common
 * prompt prefix is therefore evaluated again by every answer, as raw node-llama-cpp does
 * with a cleared sequence.
 */
export class LlamaCppBackend implements LlmBackend {
  readonly name = 'llama';
  readonly version: string;
  /** LLM_THREADS=0: median ms of the last timed trial by thread count (see timeThreads). */
  threadTrials: ThreadTrialMedians | null;
  private active = 0;
  private idle: (() => void) | null = null;
  /** Slots no generation holds. */
  private free: Slot[];
  /** LLM_THREADS=0 with more than one count to choose from: whether answers still run at their trial's speed. */
  private readonly drift: ThreadDrift | null;
  /** Set when the drift calls for a new timing: it starts once no generation runs. */
  private retimeDue = false;
  /** A timing in progress (and the swap to the count it picks): generations wait for it. */
  private retiming: Promise<void> | null = null;
  /** The trial of a timing runs (set before `retiming` is, when it starts at once). */
  private timing = false;

  private constructor(
    private readonly model: LlamaModel,
    private context: LlamaContext,
    private counts: ThreadCounts,
    private readonly options: LlamaBackendOptions,
    private readonly chatWrapper: ChatWrapper,
    slots: Slot[],
    private readonly candidates: number[],
    trials: ThreadTrials | null,
    /** LLM_THREADS=0: the count steps run on, from the answers' own step times (null: the counts as timed). */
    private readonly steps: StepCountChoice | null,
  ) {
    this.version = `llama:${options.model}`;
    this.threadTrials = trials && trialMedians(trials);
    this.free = slots;
    this.drift = trials && candidates.length > 1 ? new ThreadDrift(stepMsAt(trials, counts.decode), options.threadDrift ?? THREAD_DRIFT) : null;
  }

  /** LLM_THREADS=0: a timing of the counts is running (generations wait for it). */
  get retimingThreads(): boolean {
    return this.retiming !== null || this.timing;
  }

  /** llama.cpp threads this model makes the answer's tokens with, one token a step (but for the steps that time another count). */
  get threads(): number {
    return this.steps?.current ?? this.counts.decode;
  }

  /** LLM_THREADS=0: by count, the median over recent answers of their mean ms a step (null with a fixed count). */
  get stepMs(): Record<number, number> | null {
    return this.steps?.medians() ?? null;
  }

  /** llama.cpp threads this model reads a prompt with (a batch of several tokens). */
  get promptThreads(): number {
    return this.counts.prompt;
  }

  static async load(options: LlamaBackendOptions): Promise<LlamaCppBackend> {
    const llama = await cpuLlama();
    const model = await llama.loadModel({ modelPath: options.modelPath, ...LLAMA_MODEL_LOAD });
    try {
      const { resolveChatWrapper } = await import('node-llama-cpp');
      // Resolved once: a LlamaChat left to resolve it renders the model's Jinja template anew for every answer.
      const chatWrapper: ChatWrapper = resolveChatWrapper(model);
      // Fixed counts: node-llama-cpp's own default is every math core, which stalls
      // spin-waiting threads as soon as anything else runs on those cores.
      const candidates = options.threads > 0 ? [options.threads] : threadCandidates(usableCores(readCpuBudget()));
      const trials = options.threads > 0 ? null : await timeThreads(model, candidates, chatWrapper);
      const wanted = trials ? fastestCounts(trials) : { prompt: options.threads, decode: options.threads };
      const steps = trials && candidates.length > 1 ? new StepCountChoice(stepCandidates(trials, options.stepChoice ?? STEP_CHOICE), wanted.decode, options.stepChoice ?? STEP_CHOICE, options.onStepThreads) : null;
      const { context, slots, counts, stepsChosen } = await slotsOn(model, options, chatWrapper, wanted, steps);
      return new LlamaCppBackend(model, context, counts, options, chatWrapper, slots, candidates, trials, stepsChosen ? steps : null);
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  /**
   * LLM_THREADS=0: times the counts again (the same trial as at load) and, when another
   * count wins, moves the slots to a context of that many threads. Runs when no generation
   * does; generations that arrive meanwhile wait for it (a trial takes a few answers' time).
   */
  retime(observedMsPerToken = 0): Promise<void> {
    if (this.retiming) return this.retiming;
    const run = async () => {
      if (this.active > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      const from = this.counts;
      const trialMsPerToken = this.drift?.baseline ?? 0;
      this.timing = true;
      this.options.onThreadsRetiming?.({ from, observedMsPerToken, trialMsPerToken });
      try {
        const trials = await timeThreads(this.model, this.candidates, this.chatWrapper);
        let to = fastestCounts(trials);
        this.steps?.restart(stepCandidates(trials, this.options.stepChoice ?? STEP_CHOICE), to.decode);
        if (to.prompt !== from.prompt || to.decode !== from.decode) {
          const next = await slotsOn(this.model, this.options, this.chatWrapper, to, this.steps);
          to = next.counts;
          const old = { context: this.context, slots: this.free };
          this.context = next.context;
          this.counts = next.counts;
          this.free = next.slots;
          for (const slot of old.slots) {
            await slot.cleared;
            slot.chat.dispose();
          }
          await old.context.dispose();
        }
        this.threadTrials = trialMedians(trials);
        this.drift?.reset(stepMsAt(trials, to.decode));
        this.options.onThreadsRetimed?.({ from, to, threadTrials: this.threadTrials, observedMsPerToken, trialMsPerToken });
      } catch (error) {
        // The count in use stays; the drift starts over so a failing trial is not retried at once.
        this.drift?.reset(trialMsPerToken);
        this.options.onThreadsRetimed?.({ from, to: from, threadTrials: this.threadTrials ?? { prompt: {}, step: {} }, observedMsPerToken, trialMsPerToken, error });
      } finally {
        this.timing = false;
      }
    };
    this.retiming = run().finally(() => (this.retiming = null));
    return this.retiming;
  }

  /** Real token counts, from the model's own tokenizer. */
  countTokens(text: string): number {
    return this.model.tokenize(text).length;
  }

  async *generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    const contextSize = this.context.contextSize;
    const maxTokens = Math.max(1, Math.min(request.maxTokens, contextSize - TEMPLATE_RESERVE * 2));
    let messages = request.messages;
    let used: LlmSource[] = [];
    const rag = request.grounded || request.sources.length > 0;
    // A tokenize call costs ~1.7 ms of the main thread even for a short text (a 152k-token
    // BPE vocabulary, Qwen2.5-0.5B's), all of it before llama.cpp starts on the prompt: a
    // chat that fits by its UTF-8 bytes (no token is shorter than a byte; +1 for a leading
    // space piece) is not tokenized at all, and otherwise each text only once per answer.
    const fitsByBytes = !rag && request.messages.reduce((sum, m) => sum + Buffer.byteLength(m.content) + 1 + 8, 0) + maxTokens + TEMPLATE_RESERVE <= contextSize;
    if (!fitsByBytes) {
      const counted = new Map<string, number>();
      const count = (text: string): number => {
        let n = counted.get(text);
        if (n === undefined) counted.set(text, (n = this.countTokens(text)));
        return n;
      };
      const chatTokens = request.messages.reduce((sum, m) => sum + count(m.content) + 8, 0);
      // Sources get what the context has left after the chat and the answer's budget.
      const sourceBudget = Math.max(0, contextSize - maxTokens - chatTokens - TEMPLATE_RESERVE);
      if (rag) ({ messages, used } = ragMessages(request.messages, request.sources, sourceBudget, count));
      const promptTokens = messages.reduce((sum, m) => sum + count(m.content), 0);
      if (promptTokens + maxTokens + TEMPLATE_RESERVE > contextSize) {
        throw appError('LLM_PROMPT_TOO_LONG', `The conversation (${promptTokens} tokens) and the answer budget (${maxTokens}) exceed the model's context of ${contextSize} tokens`);
      }
    }

    // The thread count is being timed again (LLM_THREADS=0): generations wait for its slots.
    while (this.retiming) await this.retiming;
    const slot = this.free.pop();
    if (!slot) throw appError('LLM_BUSY', 'Every generation slot of the model is taken');
    this.active++;
    const { chat, sequence } = slot;

    // Aborted by the caller, or here when the consumer stops pulling (client gone).
    const stop = new AbortController();
    const forward = () => stop.abort();
    if (request.signal.aborted) stop.abort();
    request.signal.addEventListener('abort', forward, { once: true });
    // llama.cpp pushes chunks through a callback; they wait here until the consumer pulls.
    const pending: string[] = [];
    let completionTokens = 0;
    // When the first and the last token came: the answer's decode ms per token, for the drift.
    let firstAt = 0;
    let lastAt = 0;
    let wake: (() => void) | null = null;
    let finished: { stopReason: string } | null = null;
    let failure: unknown = null;
    // The previous answer's erase, then a check that it left nothing: the sequence starts empty.
    const emptied = slot.cleared.then(() => (sequence.contextTokens.length > 0 ? sequence.clearHistory() : undefined));
    const inputBefore = sequence.tokenMeter.usedInputTokens;
    const generation = emptied
      .then(() =>
        chat.generateResponse(historyOf(messages), {
          maxTokens,
          signal: stop.signal,
          stopOnAbortSignal: true,
          onResponseChunk: (chunk) => {
            if (chunk.type !== undefined) return; // thought segments are not part of the answer
            completionTokens += chunk.tokens.length;
            lastAt = performance.now();
            if (!firstAt) firstAt = lastAt;
            if (chunk.text) pending.push(chunk.text);
            wake?.();
          },
        }),
      )
      .then(
        (response) => (finished = { stopReason: response.metadata.stopReason }),
        (err: unknown) => (failure = err),
      )
      .finally(() => wake?.());

    let text = '';
    try {
      for (;;) {
        while (pending.length > 0) {
          const piece = pending.shift()!;
          text += piece;
          yield { type: 'token', text: piece };
        }
        if (failure) {
          if (stop.signal.aborted) return;
          throw failure;
        }
        if (finished) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
      if (stop.signal.aborted) return;
      yield {
        type: 'done',
        // The tokens llama.cpp evaluated for the prompt: the messages in the chat template's markup.
        usage: { promptTokens: sequence.tokenMeter.usedInputTokens - inputBefore, completionTokens },
        citations: citationsIn(text, used.map((s) => s.n)),
        finishReason: (finished as { stopReason: string }).stopReason === 'maxTokens' ? 'length' : 'stop',
      };
    } finally {
      if (!finished) stop.abort();
      request.signal.removeEventListener('abort', forward);
      await generation;
      // Erased now, while the answer's last lines travel to its client; the next answer waits for it.
      slot.cleared = sequence.clearHistory().catch(() => undefined);
      this.free.push(slot);
      this.active--;
      // A finished answer of a few tokens says how fast this count decodes now.
      if (finished && this.drift && completionTokens >= MIN_DRIFT_TOKENS && this.drift.observe((lastAt - firstAt) / (completionTokens - 1))) this.retimeDue = true;
      if (this.active === 0) {
        this.idle?.();
        this.idle = null;
        if (this.retimeDue && !this.retiming) {
          this.retimeDue = false;
          void this.retime(this.drift!.lastMedian);
        }
      }
    }
  }

  /** Frees the model once running generations end (a switched-out version keeps serving them). */
  async dispose(): Promise<void> {
    while (this.retiming) await this.retiming;
    if (this.active > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    for (const slot of this.free) slot.chat.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** Answers shorter than this say too little about the decode speed to count in the drift. */
const MIN_DRIFT_TOKENS = 4;

/**
 * A context and its slots (a sequence with its LlamaChat each), reading prompts on
 * `counts.prompt` threads and making tokens on `counts.decode`. The counts it got: both
 * the prompt's when the two cannot be set apart (see phaseThreads).
 */
async function slotsOn(
  model: LlamaModel,
  options: LlamaBackendOptions,
  chatWrapper: ChatWrapper,
  wanted: ThreadCounts,
  steps: StepCountChoice | null,
): Promise<{ context: LlamaContext; slots: Slot[]; counts: ThreadCounts; stepsChosen: boolean }> {
  const { LlamaChat } = await import('node-llama-cpp');
  const context = await model.createContext({ contextSize: Math.min(options.contextSize, model.trainContextSize), sequences: options.slots, threads: wanted.prompt });
  const phased = phaseThreads(context, wanted, steps);
  const counts = phased ? wanted : { prompt: wanted.prompt, decode: wanted.prompt };
  const slots: Slot[] = [];
  for (let i = 0; i < options.slots; i++) {
    const sequence = context.getSequence();
    slots.push({ sequence, chat: new LlamaChat({ contextSequence: sequence, chatWrapper }), cleared: Promise.resolve() });
  }
  return { context, slots, counts, stepsChosen: phased && steps !== null };
}

/** What phaseThreads uses of node-llama-cpp 3.21's native context (`LlamaContext._ctx`). */
interface NativeContext {
  initBatch(size: number): unknown;
  decodeBatch(): Promise<unknown>;
  setThreads(threads: number): unknown;
}

/**
 * Makes the context decode a batch of several tokens (a prompt, or steps of several
 * answers at once) on `counts.prompt` threads and a single token on `counts.decode`, or
 * on the count `steps` gives for each step when there is one (each step then timed, from
 * its decode to the next step's: see StepCountChoice).
 * llama.cpp keeps these two counts (n_threads_batch and n_threads, as llama-cli's -tb and
 * -t), but node-llama-cpp 3.21 sets both to one: so the count is set before each batch,
 * from the batch's size. False (nothing changed) when there is nothing to choose (one
 * count, no step choice), or when the native context does not have the methods this
 * relies on (another node-llama-cpp version); the context then runs at its one count.
 */
export function phaseThreads(context: LlamaContext, counts: ThreadCounts, steps: StepCountChoice | null = null): boolean {
  if (counts.prompt === counts.decode && !steps) return false;
  const native = (context as unknown as { _ctx?: Partial<NativeContext> })._ctx;
  if (!native || typeof native.initBatch !== 'function' || typeof native.decodeBatch !== 'function' || typeof native.setThreads !== 'function') return false;
  const initBatch = native.initBatch.bind(native);
  const decodeBatch = native.decodeBatch.bind(native);
  const setThreads = native.setThreads.bind(native);
  let batchSize = 0;
  /** The step decoded last, while the next batch may still be a step of the same answer. */
  let lastStep: { threads: number; at: number } | null = null;
  // The native methods are read-only properties of its prototype: defined on the instance instead.
  Object.defineProperty(native, 'initBatch', { configurable: true, value: (size: number) => ((batchSize = size), initBatch(size)) });
  Object.defineProperty(native, 'decodeBatch', {
    configurable: true,
    value: () => {
      if (batchSize > 1) {
        // A prompt (or several answers' steps together) ends a run of steps: the time since is not a step's.
        lastStep = null;
        steps?.startRun();
        setThreads(counts.prompt);
        return decodeBatch();
      }
      const now = performance.now();
      if (steps && lastStep) steps.observe(lastStep.threads, now - lastStep.at);
      const threads = steps ? steps.next() : counts.decode;
      lastStep = { threads, at: now };
      setThreads(threads);
      return decodeBatch();
    },
  });
  return true;
}

/** A thread trial's milliseconds by count: the prompt (until the first token), and each decode step after it. */
interface ThreadTrials {
  promptMs: Map<number, number[]>;
  stepMs: Map<number, number[]>;
}

const medians = (byCount: Map<number, number[]>): Record<number, number> =>
  Object.fromEntries([...byCount].filter(([, ms]) => ms.length > 0).map(([threads, ms]) => [threads, Math.round(median(ms) * 10) / 10]));

const trialMedians = (trials: ThreadTrials): ThreadTrialMedians => ({ prompt: medians(trials.promptMs), step: medians(trials.stepMs) });

/**
 * The fastest count for each phase: reading the prompt, and making a token. A count whose
 * trials never got past the prompt has no step time and is not picked for steps.
 */
function fastestCounts(trials: ThreadTrials): ThreadCounts {
  const prompt = fastestThreads(trials.promptMs);
  const anyStepTimed = [...trials.stepMs.values()].some((ms) => ms.length > 0);
  return { prompt, decode: anyStepTimed ? fastestThreads(trials.stepMs) : prompt };
}

/** The counts answers' steps may run on: those whose trial steps were within `dropAbove` of the fastest's. */
function stepCandidates(trials: ThreadTrials, options: StepChoiceOptions): number[] {
  const timed = [...trials.stepMs].filter(([, ms]) => ms.length > 0).map(([threads, ms]) => [threads, median(ms)] as const);
  const fastest = Math.min(...timed.map(([, ms]) => ms));
  return timed.filter(([, ms]) => ms <= fastest * options.dropAbove).map(([threads]) => threads);
}

/** The trial's decode ms per token at `threads` (0 when it was never timed whole). */
const stepMsAt = (trials: ThreadTrials, threads: number): number => {
  const steps = trials.stepMs.get(threads) ?? [];
  return steps.length > 0 ? median(steps) : 0;
};

/** Prompt tokens and generated tokens of one thread trial: a short answer's prompt decode and a few steps. */
const TRIAL_PROMPT_TOKENS = 48;
const TRIAL_STEPS = 8;
const TRIAL_ROUNDS = 3;

/**
 * Times the same small answer (a 48-token prompt, then 8 tokens, through LlamaChat as
 * answers go) on this model at each candidate thread count, the counts interleaved over
 * three rounds so a change in the machine's load hits them alike; milliseconds by count
 * for its prompt (until the first token) and for each step after it.
 *
 * Why time it rather than compute it: llama.cpp's threads meet at a barrier after every
 * operation and spin while they wait. On cores other work also uses, more threads get a
 * bigger share of CPU time (the scheduler shares by thread) but lose more of it waiting
 * for a descheduled peer, and which effect wins depends on the model's shape: a 260K
 * llama on a loaded 2-core machine made 60 tokens in 0.05 s with 1 thread and 36 s with 2,
 * a Qwen2.5-0.5B-shaped one was fastest with 2 at a load average of 10. The load average
 * cannot tell these apart; a trial on the model itself can.
 *
 * A count slower than twice the best of its round at both phases is not tried again, and a
 * trial stops early once it has taken three times the best whole trial (its time so far counts).
 */
async function timeThreads(model: LlamaModel, candidates: number[], chatWrapper: ChatWrapper): Promise<ThreadTrials> {
  const promptMs = new Map<number, number[]>(candidates.map((threads) => [threads, []]));
  const stepMs = new Map<number, number[]>(candidates.map((threads) => [threads, []]));
  if (candidates.length === 1) return { promptMs: promptMs.set(candidates[0]!, [0]), stepMs };
  let text = 'The quarterly report of the northern office describes sales, costs, staff and plans for the next year. ';
  let tokens = model.tokenize(text);
  while (tokens.length < TRIAL_PROMPT_TOKENS) tokens = model.tokenize((text += text));
  text = model.detokenize(tokens.slice(0, TRIAL_PROMPT_TOKENS));
  const { LlamaChat } = await import('node-llama-cpp');
  const sides = new Map<number, { context: LlamaContext; chat: LlamaChat }>();
  try {
    for (const threads of candidates) {
      const context = await model.createContext({ contextSize: 256, sequences: 1, threads });
      sides.set(threads, { context, chat: new LlamaChat({ contextSequence: context.getSequence(), chatWrapper }) });
    }
    let alive = [...candidates];
    let bestTrial = Infinity;
    for (let round = 0; round < TRIAL_ROUNDS && alive.length > 1; round++) {
      const firstTimes = new Map<number, number>();
      const stepTimes = new Map<number, number>();
      for (const threads of alive) {
        // An answer's own path (LlamaChat: template, sampling, detokenizing between steps),
        // not the bare decode: on 2 cores, a second llama.cpp thread slowed the steps of
        // answers by 5–10 % and the bare decode's not at all.
        const { chat } = sides.get(threads)!;
        await chat.sequence.clearHistory();
        const stop = new AbortController();
        const started = performance.now();
        let steps = 0;
        let firstAt = 0;
        let lastAt = 0;
        await chat.generateResponse([{ type: 'user', text }, { type: 'model', response: [] }], {
          maxTokens: TRIAL_STEPS,
          signal: stop.signal,
          stopOnAbortSignal: true,
          onResponseChunk: (chunk) => {
            if (chunk.type !== undefined) return;
            lastAt = performance.now();
            if (!firstAt) firstAt = lastAt;
            else steps += chunk.tokens.length;
            if (lastAt - started > bestTrial * 3) stop.abort();
          },
        });
        const ended = lastAt || performance.now();
        const ms = ended - started;
        if (firstAt) {
          firstTimes.set(threads, firstAt - started);
          promptMs.get(threads)!.push(firstAt - started);
        }
        if (steps > 0) {
          const step = (ended - firstAt) / steps;
          stepTimes.set(threads, step);
          stepMs.get(threads)!.push(step);
        }
        if (steps + 1 >= TRIAL_STEPS) bestTrial = Math.min(bestTrial, ms);
      }
      // A count stays while it is within twice the best of the round at either phase.
      const within = (byCount: Map<number, number>, threads: number) => byCount.has(threads) && byCount.get(threads)! <= Math.min(...byCount.values()) * 2;
      alive = alive.filter((threads) => within(firstTimes, threads) || within(stepTimes, threads));
    }
  } finally {
    for (const { context, chat } of sides.values()) {
      chat.dispose();
      await context.dispose();
    }
  }
  return { promptMs, stepMs };
}

function historyOf(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m) =>
    m.role === 'system' ? { type: 'system', text: m.content } : m.role === 'user' ? { type: 'user', text: m.content } : { type: 'model', response: [m.content] },
  );
  // The model's turn to answer.
  history.push({ type: 'model', response: [] });
  return history;
}
