import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LlamaChat, LlamaContext } from 'node-llama-cpp';
import { ensureTinyLlama } from '../../test/support/tiny-gguf.ts';
import { LLAMA_MODEL_LOAD, LlamaCppBackend, phaseThreads, type ThreadsRetimed } from './llama.ts';
import { readCpuBudget, StepCountChoice, threadCandidates, usableCores } from './threads.ts';

describe('llama backend threads', () => {
  let picked: LlamaCppBackend;
  let fixed: LlamaCppBackend;

  before(async () => {
    const tiny = await ensureTinyLlama();
    const options = { modelPath: tiny.modelPath, model: 'tiny-llama@1', contextSize: 256, slots: 1 };
    picked = await LlamaCppBackend.load({ ...options, threads: 0 });
    fixed = await LlamaCppBackend.load({ ...options, threads: 1 });
  });

  after(async () => {
    await picked?.dispose();
    await fixed?.dispose();
  });

  it('LLM_THREADS=0 times the model at each candidate count, and reads prompts with the fastest for prompts, makes tokens with the fastest for steps', () => {
    const candidates = threadCandidates(usableCores(readCpuBudget()));
    const trials = picked.threadTrials!;
    assert.deepEqual(Object.keys(trials.prompt).map(Number), candidates);
    assert.ok(candidates.includes(picked.promptThreads));
    assert.ok(candidates.includes(picked.threads));
    if (candidates.length > 1) {
      const fastestPrompt = Math.min(...Object.values(trials.prompt));
      assert.ok(trials.prompt[picked.promptThreads]! <= fastestPrompt * 1.04, `prompt on ${picked.promptThreads} from ${JSON.stringify(trials)}`);
      const fastestStep = Math.min(...Object.values(trials.step));
      assert.ok(trials.step[picked.threads]! <= fastestStep * 1.04, `steps on ${picked.threads} from ${JSON.stringify(trials)}`);
    }
  });

  it('a fixed LLM_THREADS is used as given, with no trial', () => {
    assert.equal(fixed.threads, 1);
    assert.equal(fixed.promptThreads, 1);
    assert.equal(fixed.threadTrials, null);
  });

  it('times the counts again on demand, and an answer asked meanwhile waits for it and runs on the count it picks', async () => {
    const candidates = threadCandidates(usableCores(readCpuBudget()));
    const retiming = picked.retime();
    const answer = (async () => {
      let usage = null;
      for await (const event of picked.generate({ messages: [{ role: 'user', content: 'Hello' }], sources: [], grounded: false, maxTokens: 4, signal: new AbortController().signal })) {
        if (event.type === 'done') usage = event.usage;
      }
      return usage;
    })();
    await retiming;
    assert.deepEqual(Object.keys(picked.threadTrials!.prompt).map(Number), candidates);
    assert.ok(candidates.includes(picked.threads));
    assert.ok(await answer, 'the answer asked during the timing completed');
  });

  it('generates with the picked count', async () => {
    let tokens = 0;
    for await (const event of picked.generate({ messages: [{ role: 'user', content: 'Hello' }], sources: [], grounded: false, maxTokens: 4, signal: new AbortController().signal })) {
      if (event.type === 'done') tokens = event.usage.completionTokens;
    }
    assert.ok(tokens >= 1 && tokens <= 4);
  });
});

/** What reaches llama.cpp in each batch (its size, then the count set for it), seen through the native context's own methods. */
type RecordedBatch = { size: number; threads?: number };

/**
 * A 2-thread context of the tiny GGUF whose batches are recorded as llama.cpp receives
 * them, handed to `run` with a LlamaChat factory; model and context are disposed after.
 */
async function withRecordedContext(
  run: (held: { context: LlamaContext; native: { getThreads(): number }; batches: RecordedBatch[]; chatOn: (context: LlamaContext) => LlamaChat }) => Promise<void>,
): Promise<void> {
  const tiny = await ensureTinyLlama();
  const { getLlama, LlamaChat, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: tiny.modelPath, ...LLAMA_MODEL_LOAD });
  try {
    const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 2 });
    const native = (context as unknown as { _ctx: { setThreads(n: number): unknown; getThreads(): number; initBatch(n: number): unknown } })._ctx;
    const set = native.setThreads.bind(native);
    const init = native.initBatch.bind(native);
    const batches: RecordedBatch[] = [];
    Object.defineProperty(native, 'initBatch', { configurable: true, value: (n: number) => (batches.push({ size: n }), init(n)) });
    Object.defineProperty(native, 'setThreads', { configurable: true, value: (n: number) => ((batches.at(-1)!.threads = n), set(n)) });
    try {
      await run({ context, native, batches, chatOn: (on) => new LlamaChat({ contextSequence: on.getSequence() }) });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

describe('llama.cpp thread counts apart for prompts and for tokens', () => {
  it('each batch is decoded on the count of its kind: several tokens on the prompt count, one token on the step count', async () => {
    await withRecordedContext(async ({ context, native, batches, chatOn }) => {
      assert.equal(phaseThreads(context, { prompt: 2, decode: 1 }), true);
      const chat = chatOn(context);
      await chat.generateResponse([{ type: 'user', text: 'Tell me about the northern office.' }, { type: 'model', response: [] }], { maxTokens: 6 });
      assert.ok(batches.length >= 3, JSON.stringify(batches));
      assert.ok(batches.some((b) => b.size > 1) && batches.some((b) => b.size === 1), JSON.stringify(batches));
      for (const b of batches) assert.equal(b.threads, b.size > 1 ? 2 : 1, JSON.stringify(batches));
      assert.equal(native.getThreads(), 1, 'llama.cpp runs the last step on one thread');
      assert.equal(phaseThreads(context, { prompt: 2, decode: 2 }), false, 'one count: nothing to change');
      chat.dispose();
    });
  });

  it("with a step choice, each answer's steps run on the count it gives, and every step but an answer's last is timed for it", async () => {
    await withRecordedContext(async ({ context, batches, chatOn }) => {
      // Every second answer on the other count, so two short answers time both.
      const choice = new StepCountChoice([1, 2], 2, { window: 8, exploreEvery: 2, minRuns: 1000, minRunSteps: 1, switchBelow: 0.97, dropAbove: 1.5 });
      const observed: Array<[number, number]> = [];
      const observe = choice.observe.bind(choice);
      choice.observe = (threads, ms) => (observed.push([threads, ms]), observe(threads, ms));
      assert.equal(phaseThreads(context, { prompt: 2, decode: 2 }, choice), true, 'one count, but a step choice: wrapped');
      const chat = chatOn(context);
      for (let answer = 0; answer < 2; answer++) {
        await chat.sequence.clearHistory();
        await chat.generateResponse([{ type: 'user', text: 'Tell me about the northern office.' }, { type: 'model', response: [] }], { maxTokens: 6 });
      }
      choice.startRun(); // as the next prompt would: the second answer's run is kept
      // Each answer: its prompt on 2 threads, then its steps on the count of its run (2, then 1).
      const runs = batches.map((b) => (b.size > 1 ? 'p' : String(b.threads))).join('').split('p').filter(Boolean);
      assert.equal(runs.length, 2, JSON.stringify(batches));
      assert.match(runs[0]!, /^2+$/);
      assert.match(runs[1]!, /^1+$/);
      for (const b of batches.filter((b) => b.size > 1)) assert.equal(b.threads, 2);
      // Each step is timed when the next one starts; the time from an answer's last step to the next prompt is not a step's.
      assert.equal(observed.length, runs[0]!.length + runs[1]!.length - 2);
      assert.ok(observed.every(([, ms]) => ms > 0));
      assert.deepEqual(Object.keys(choice.medians()).map(Number), [1, 2]);
      chat.dispose();
    });
  });
});

describe('llama backend threads drift (LLM_THREADS=0)', () => {
  const cores = usableCores(readCpuBudget());

  it('answers far from the trial speed time the counts again once no generation runs', { skip: cores < 2 && 'one usable core: no count to choose' }, async () => {
    const tiny = await ensureTinyLlama();
    let retimed!: (event: ThreadsRetimed) => void;
    const event = new Promise<ThreadsRetimed>((resolve) => (retimed = resolve));
    let retimingSeen = false;
    // A drift window of one answer and a factor of 1: any answer away from the trial's exact speed is a drift.
    const backend = await LlamaCppBackend.load({
      modelPath: tiny.modelPath,
      model: 'tiny-llama@1',
      contextSize: 256,
      slots: 1,
      threads: 0,
      threadDrift: { window: 1, factor: 1, minIntervalMs: 0 },
      // Told as it starts (bench:llm waits for it), and llm.info's flag says it runs.
      onThreadsRetiming: () => (retimingSeen = backend.retimingThreads),
      onThreadsRetimed: retimed,
    });
    try {
      const before = backend.threadTrials;
      for await (const _ of backend.generate({ messages: [{ role: 'user', content: 'Tell me about the northern office and its staff.' }], sources: [], grounded: false, maxTokens: 12, signal: new AbortController().signal }));
      const retiming = await event;
      assert.equal(retiming.error, undefined);
      assert.equal(retimingSeen, true, 'the start was told while the timing ran');
      assert.ok(retiming.observedMsPerToken > 0 && retiming.trialMsPerToken > 0);
      assert.deepEqual(retiming.to, { prompt: backend.promptThreads, decode: backend.threads });
      assert.notEqual(backend.threadTrials, before, 'the new trial is what llm.info reports');
      let usage = null;
      for await (const e of backend.generate({ messages: [{ role: 'user', content: 'Hello' }], sources: [], grounded: false, maxTokens: 4, signal: new AbortController().signal })) if (e.type === 'done') usage = e.usage;
      assert.ok(usage);
    } finally {
      await backend.dispose();
    }
  });
});

/**
 * Slots are made once and reused: every answer must start from an empty sequence, so
 * nothing of one answer (prompt, tokens, KV cache) reaches the next. The tiny model
 * samples greedily, so an answer is a function of its prompt alone: the same prompt
 * gives the same text whatever came before it, and evaluates the same prompt tokens (a
 * sequence still holding the previous answer would reuse their common template prefix).
 */
describe('llama backend slots', () => {
  let shared: LlamaCppBackend;
  let fresh: LlamaCppBackend;
  const P = 'Tell me about the northern office and its staff.';
  const Q = 'What does the quarterly report say about costs?';

  const answer = async (backend: LlamaCppBackend, content: string, options: { maxTokens?: number; abortAfter?: number } = {}) => {
    const signal = new AbortController();
    let text = '';
    let tokens = 0;
    let usage: { promptTokens: number; completionTokens: number } | null = null;
    for await (const event of backend.generate({ messages: [{ role: 'user', content }], sources: [], grounded: false, maxTokens: options.maxTokens ?? 12, signal: signal.signal })) {
      if (event.type === 'token') {
        text += event.text;
        if (++tokens === options.abortAfter) signal.abort();
      } else usage = event.usage;
    }
    return { text, usage };
  };

  before(async () => {
    const tiny = await ensureTinyLlama();
    const options = { modelPath: tiny.modelPath, model: 'tiny-llama@1', contextSize: 512, threads: 1 };
    shared = await LlamaCppBackend.load({ ...options, slots: 2 });
    fresh = await LlamaCppBackend.load({ ...options, slots: 1 });
  });

  after(async () => {
    await shared?.dispose();
    await fresh?.dispose();
  });

  it('consecutive answers with different prompts share no state', async () => {
    const p = await answer(shared, P);
    const q = await answer(shared, Q);
    const pAgain = await answer(shared, P);
    const qAlone = await answer(fresh, Q);
    assert.notEqual(p.text, q.text, 'the two prompts give different answers, so a leak would show');
    assert.deepEqual(q, qAlone, 'the answer after another is the answer alone');
    assert.deepEqual(pAgain, p);
    // The whole prompt in the chat template's markup was evaluated: more tokens than the message itself.
    assert.ok(p.usage!.promptTokens > shared.countTokens(P), `${p.usage!.promptTokens} prompt tokens`);
  });

  it('an aborted answer leaves nothing for the next one', async () => {
    const aborted = await answer(shared, P, { maxTokens: 200, abortAfter: 3 });
    assert.equal(aborted.usage, null, 'no done event after an abort');
    assert.deepEqual(await answer(shared, Q), await answer(fresh, Q));
  });

  it('concurrent answers each take a slot of their own, and the slots come back', async () => {
    const [p, q] = await Promise.all([answer(shared, P), answer(shared, Q)]);
    const [pAlone, qAlone] = [await answer(fresh, P), await answer(fresh, Q)];
    // Same prompts evaluated in full on both slots (the texts of a batched decode may round differently).
    assert.equal(p.usage!.promptTokens, pAlone.usage!.promptTokens);
    assert.equal(q.usage!.promptTokens, qAlone.usage!.promptTokens);
    assert.equal(p.usage!.completionTokens, 12);
    // Both slots free again: two more at once still run.
    const again = await Promise.all([answer(shared, Q), answer(shared, Q)]);
    assert.ok(again.every((a) => a.usage !== null));
  });

  it('a chat is counted in tokens when its bytes alone would not fit the context, and refused when its tokens do not', async () => {
    // ~1,100 bytes in a 512-token context, but far fewer tokens: it fits.
    const long = 'The office opens at nine. '.repeat(42);
    assert.ok(Buffer.byteLength(long) > 512 && shared.countTokens(long) < 512 - 12 - 64);
    assert.ok((await answer(shared, long)).usage);
    await assert.rejects(() => answer(shared, long.repeat(4)), { type: 'LLM_PROMPT_TOO_LONG' });
  });

  it('a generation past the slots is refused, not queued on a taken sequence', async () => {
    const first = fresh.generate({ messages: [{ role: 'user', content: P }], sources: [], grounded: false, maxTokens: 50, signal: new AbortController().signal })[Symbol.asyncIterator]();
    await first.next();
    await assert.rejects(() => answer(fresh, Q), { type: 'LLM_BUSY' });
    await first.return?.(undefined);
    assert.ok((await answer(fresh, Q)).usage);
  });
});
