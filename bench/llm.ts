/**
 * bench:llm — local generation speed through the llm service against raw
 * node-llama-cpp at its best thread count, same model, same run.
 *
 * The model is a random-weight GGUF in Qwen2.5-0.5B's shape (q8_0, its real 152k
 * vocabulary) written by the project (test/support/tiny-gguf.ts): speed depends on the
 * shape, not on the weights. Three ways to the same tokens:
 *   raw       — node-llama-cpp's LlamaChat in this process, every thread count from 1
 *               to the CPUs available tried, the fastest kept as the baseline (below);
 *   embedded  — POST /api/v1/chats/:id/messages on an embedded node in this process
 *               (api → llm service → llama backend, LLM_THREADS=0: the counts it timed
 *               fastest on the model when it loaded, for prompts and for steps apart, the
 *               step count then chosen by its answers' own step times, StepCountChoice —
 *               hence BENCH_WARMUPS answers per service, 12, before the comparison);
 *   mesh      — the same request to a mesh api, the llm service in its own process
 *               over RabbitMQ (LLM_THREADS=0 there too).
 * Raw runs at the (up to) two thread counts its sweep found fastest, and the one with the
 * quickest first token; which of them is the baseline is decided by the comparison itself,
 * where they are sampled in the same rounds as the service: the one the service compares
 * worst with (ratio_by_raw_threads). Samples of all sides alternate, the order rotating each round, so drift
 * in machine load and whatever a side leaves behind (the mesh's RabbitMQ and processes
 * waking, the previous generation's memory traffic) hit all alike. Each side's prompt is the same 25 tokens in the chat template (raw: the
 * sequence's token meter; service: usage.promptTokens, what llama.cpp evaluated), reported
 * as prompt_tokens.
 *
 * Raw loads the model as the backend does (LLAMA_MODEL_LOAD: read into memory, not
 * mapped), so the ratio measures the service's path, not a load option. Next to the rates,
 * CPU milliseconds per generated token (prompt included) of the processes doing the work:
 * this process for raw and embedded (the embedded api, llm and the HTTP client share it),
 * the llm and api processes for the mesh. CPU time depends less than wall clock on what
 * else the shared machine runs.
 *
 *   ratio = min(tokens/s service ÷ tokens/s raw, TTFT raw ÷ TTFT service) over embedded and mesh,
 *           against the raw count where it is lowest
 *   goal ≥ 0.90
 *   cpu_ratios = CPU ms per token raw ÷ service (beside the goal, not part of it)
 */
import os from 'node:os';
import type { LlamaChat as LlamaChatType, LlamaContext, LlamaModel } from 'node-llama-cpp';
import { loadConfig } from '../lib/config/env.ts';
import { LLAMA_MODEL_LOAD } from '../lib/llm/llama.ts';
import { readCpuBudget, usableCores } from '../lib/llm/threads.ts';
import { ensureTinyLlama, QWEN25_05B_SHAPE } from '../test/support/tiny-gguf.ts';
import { createLogger } from '../lib/logging.ts';
import { publishFolder } from '../lib/models/publish.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import { Stores } from '../lib/runtime/stores.ts';
import { startEmbeddedNode } from '../test/support/embedded.ts';
import { httpJson } from '../test/support/http.ts';
import { TestMesh } from '../test/support/mesh.ts';
import { waitFor } from '../test/support/processes.ts';
import { processCpuMs } from './support.ts';

const TOKENS = Number(process.env.BENCH_TOKENS ?? 32);
/**
 * Samples per side in the comparison (the sweep takes 3 per count): with 5, the median TTFT
 * of one side moved 256–497 ms within a run at load 5; 15 made each median one of fifteen
 * rounds with the order rotated five times. 21 since session 15: one side's first tokens
 * spread 116–256 ms within a run (raw on 2 threads, 15 samples), so the medians of two
 * sides moved apart by more than the goal's 10 % on noise alone.
 */
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 21);
const SWEEP_SAMPLES = 3;
/** Answers each service gives before the comparison. */
const WARMUPS = Number(process.env.BENCH_WARMUPS ?? 12);
const CONTEXT = 2048;
const ALIAS = 'qwen-shape';
const PROMPT = 'Summarise what the quarterly report says about the northern office, in three sentences.';

interface Sample {
  ttftMs: number;
  tokensPerSecond: number;
  tokens: number;
  /** Prompt tokens the model evaluated. */
  promptTokens: number;
  /** CPU ms of the working processes per generated token (prompt processing included). */
  cpuMsPerToken?: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const summary = (samples: Sample[]) => ({
  ttft_ms: round(median(samples.map((s) => s.ttftMs)), 1),
  tokens_per_s: round(median(samples.map((s) => s.tokensPerSecond))),
  tokens: median(samples.map((s) => s.tokens)),
  prompt_tokens: median(samples.map((s) => s.promptTokens)),
  ...(samples.every((s) => s.cpuMsPerToken !== undefined) && { cpu_ms_per_token: round(median(samples.map((s) => s.cpuMsPerToken!)), 1) }),
});

/** CPU ms so far of this process, or of other processes by pid (utime + stime from /proc). */
function cpuMs(pids: number[] = []): number {
  if (pids.length === 0) {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  }
  let total = 0;
  for (const pid of pids) {
    const ms = processCpuMs(pid);
    if (ms === null) throw new Error(`process ${pid} is gone: its CPU cannot be counted`);
    total += ms;
  }
  return total;
}

/** A sample with the CPU its processes spent on it. */
async function withCpu(pids: number[], run: () => Promise<Sample>): Promise<Sample> {
  const before = cpuMs(pids);
  const sample = await run();
  return { ...sample, cpuMsPerToken: (cpuMs(pids) - before) / Math.max(1, sample.tokens) };
}

/** Decode speed: tokens after the first over the time after the first (TTFT is prompt processing). */
function sampleOf(started: number, first: number, last: number, tokens: number, promptTokens: number): Sample {
  return { ttftMs: first - started, tokensPerSecond: tokens > 1 && last > first ? ((tokens - 1) * 1000) / (last - first) : 0, tokens, promptTokens };
}

class Raw {
  /** A context (one sequence) and its LlamaChat per thread count, kept for the whole run. */
  private readonly chats = new Map<number, { context: LlamaContext; chat: LlamaChatType }>();

  private constructor(private readonly model: LlamaModel) {}

  static async load(modelPath: string): Promise<Raw> {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error });
    return new Raw(await llama.loadModel({ modelPath, ...LLAMA_MODEL_LOAD }));
  }

  async addThreads(threads: number): Promise<void> {
    const { LlamaChat } = await import('node-llama-cpp');
    const context = await this.model.createContext({ contextSize: CONTEXT, sequences: 1, threads });
    this.chats.set(threads, { context, chat: new LlamaChat({ contextSequence: context.getSequence() }) });
  }

  async dropThreads(threads: number): Promise<void> {
    const held = this.chats.get(threads);
    this.chats.delete(threads);
    held?.chat.dispose();
    await held?.context.dispose();
  }

  /** The same history the llama backend builds for a one-message chat. */
  async generate(threads: number): Promise<Sample> {
    const chat = this.chats.get(threads)!.chat;
    await chat.sequence.clearHistory();
    const evaluated = chat.sequence.tokenMeter.usedInputTokens;
    const started = performance.now();
    let first = 0;
    let last = 0;
    let tokens = 0;
    await chat.generateResponse([{ type: 'user', text: PROMPT }, { type: 'model', response: [] }], {
      maxTokens: TOKENS,
      onResponseChunk: (chunk) => {
        if (chunk.type !== undefined) return;
        tokens += chunk.tokens.length;
        last = performance.now();
        if (!first) first = last;
      },
    });
    return sampleOf(started, first, last, tokens, chat.sequence.tokenMeter.usedInputTokens - evaluated);
  }

  async dispose(): Promise<void> {
    for (const threads of [...this.chats.keys()]) await this.dropThreads(threads);
    await this.model.dispose();
  }
}

/** One chat message over HTTP; a fresh chat each time, so the prompt is the same as raw's. */
async function overHttp(base: string, token: string, maxTokens = TOKENS): Promise<Sample> {
  const chat = (await httpJson(`${base}/api/v1/chats`, { method: 'POST', token })).body;
  const started = performance.now();
  const res = await fetch(`${base}/api/v1/chats/${chat.id}/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ content: PROMPT, rag: false, maxTokens }),
  });
  if (res.status !== 200) throw new Error(`chat answered ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = 0;
  let last = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    if (buffer.includes('event: token')) {
      last = performance.now();
      if (!first) first = last;
      buffer = buffer.slice(buffer.lastIndexOf('event: token') + 1);
    }
  }
  const done = /event: done\ndata: (.*)\n/.exec(buffer);
  if (!done) throw new Error(`no done event: ${buffer.slice(0, 300)}`);
  const { usage } = JSON.parse(done[1]!) as { usage: { promptTokens: number; completionTokens: number } };
  return sampleOf(started, first, last, usage.completionTokens, usage.promptTokens);
}

async function main(): Promise<void> {
  const madeAt = performance.now();
  const model = await ensureTinyLlama({ alias: ALIAS, shape: QWEN25_05B_SHAPE });
  console.log(`model ${model.modelPath} ready in ${Math.round(performance.now() - madeAt)} ms`);
  const budget = readCpuBudget();
  const llmEnv = { LLM_BACKEND: 'llama', LLM_MODEL: ALIAS, LLM_THREADS: '0', LLM_CONCURRENCY: '1', LLM_CONTEXT_SIZE: String(CONTEXT), LLM_MAX_TOKENS: String(TOKENS) };

  // The mesh first: its processes boot while nothing else runs.
  const mesh = await TestMesh.create();
  let embedded: Awaited<ReturnType<typeof startEmbeddedNode>> | null = null;
  let raw: Raw | null = null;
  try {
    // The test S3 server (s3rver) cannot take multipart uploads, which a 500 MB file
    // needs: the mesh's llm reads its model from a shared folder instead (OBJECTS_DRIVER=fs).
    // Only where the file comes from differs; generation and its RabbitMQ hop do not.
    const modelStore = { OBJECTS_DRIVER: 'fs', DATA_DIR: mesh.env.DATA_DIR! };
    const config = loadConfig({ ...mesh.env, ...modelStore, SERVICES: 'maintenance' });
    const stores = new Stores(config, createLogger('fatal'));
    try {
      await publishFolder(await stores.models(), model.folder);
      const repo = new ModelsRepository((await stores.db()).knex);
      await repo.register(model.manifest);
      await repo.switchTo(ALIAS, '1', 'bench');
    } finally {
      await stores.close();
    }
    // One at a time, before anything else loads: on a busy machine boots in parallel time out.
    // The model loaded (and its threads timed) before the gateway boots beside it.
    const llmNode = await mesh.start('llm', 'llm', { ...llmEnv, ...modelStore });
    const meshLoaded = await llmNode.waitForLog((e) => e.msg === 'llm model loaded', 600_000);
    const gateway = await mesh.start('gateway', 'api');
    const meshPids = [llmNode.child.pid!, gateway.child.pid!];
    const meshToken = await mesh.token('bench', 'user', 'editor');
    const node = (embedded = await startEmbeddedNode(llmEnv));
    raw = await Raw.load(model.modelPath);

    await publishFolder(await embedded.node.stores.models(), model.folder);
    await new ModelsRepository((await embedded.node.stores.db()).knex).register(model.manifest);
    const admin = { meta: { auth: { tenantId: 'ops', userId: 'ops', roles: ['admin'] } }, timeout: 600_000 };
    await embedded.node.broker.call('maintenance.models.switch', { alias: ALIAS, version: '1' }, admin);
    await waitFor('the embedded llm to load the model', async () => ((await node.node.broker.call('llm.readiness')) as { ready: boolean }).ready, 300_000);
    const embeddedInfo = (await embedded.node.broker.call('llm.info')) as { threads?: number; promptThreads?: number; threadTrials?: unknown };
    // Minted per request: the thread sweep can outlast a token's 10 minutes on a busy machine.
    const embeddedToken = () => node.token(['editor']);
    await waitFor('the mesh gateway to reach the llm', async () => (await overHttp(mesh.apiUrl, meshToken, 1).catch(() => null)) !== null, 600_000);

    // Raw node-llama-cpp at every thread count: the sweep picks the contenders, the comparison the best.
    const sweep: Record<number, ReturnType<typeof summary>> = {};
    for (let threads = 1; threads <= usableCores(budget); threads++) {
      await raw.addThreads(threads);
      const warm = await raw.generate(threads); // warm-up
      // A count already twice slower than the best is not the baseline: its samples would only cost minutes.
      const bestSoFar = Object.values(sweep).sort((a, b) => b.tokens_per_s - a.tokens_per_s)[0];
      if (bestSoFar && warm.tokensPerSecond < bestSoFar.tokens_per_s / 2 && warm.ttftMs > bestSoFar.ttft_ms * 2) {
        sweep[threads] = { ...summary([warm]), skipped: 'warm-up over twice slower than the best' } as ReturnType<typeof summary>;
        console.log(`raw, ${threads} thread(s): ${JSON.stringify(sweep[threads])}`);
        await raw.dropThreads(threads);
        continue;
      }
      const samples: Sample[] = [];
      for (let i = 0; i < SWEEP_SAMPLES; i++) samples.push(await raw.generate(threads));
      sweep[threads] = summary(samples);
      console.log(`raw, ${threads} thread(s): ${JSON.stringify(sweep[threads])}`);
    }
    // The two fastest counts of the sweep go on into the comparison, sampled in the same rounds
    // as the service: three samples per count at one moment picked 1 thread where 2 were 1.4
    // times faster for the rest of the run (a load spike during the 2-thread samples).
    // The count with the quickest first token goes on as well, when it is not one of them.
    const timed = Object.entries(sweep).filter(([, summaryOf]) => !('skipped' in summaryOf));
    const byRate = [...timed].sort((a, b) => b[1].tokens_per_s - a[1].tokens_per_s).slice(0, 2);
    const byTtft = [...timed].sort((a, b) => a[1].ttft_ms - b[1].ttft_ms).slice(0, 1);
    const contenders = [...new Set([...byRate, ...byTtft].map(([threads]) => Number(threads)))];
    for (const threads of Object.keys(sweep).map(Number)) if (!contenders.includes(threads)) await raw.dropThreads(threads);

    const meshToken2 = await mesh.token('bench', 'user', 'editor'); // the first may have expired during the sweep
    // Warm-ups of whole answers (the mesh's readiness probe asked for one token): as a service
    // that has been answering a while, whose step count the answers have chosen (StepCountChoice
    // compares counts over 3 answers each, one answer in 4 exploring).
    for (let i = 0; i < WARMUPS; i++) {
      await overHttp(node.base, await embeddedToken());
      await overHttp(mesh.apiUrl, meshToken2);
    }
    const sides: Record<string, Sample[]> = { embedded: [], mesh: [] };
    const take: Record<string, () => Promise<Sample>> = {
      embedded: async () => {
        const token = await embeddedToken();
        return withCpu([], () => overHttp(node.base, token));
      },
      mesh: () => withCpu(meshPids, () => overHttp(mesh.apiUrl, meshToken2)),
    };
    for (const threads of contenders) {
      sides[`raw${threads}`] = [];
      take[`raw${threads}`] = () => withCpu([], () => raw!.generate(threads));
    }
    // LLM_THREADS=0 times the counts again when answers
    // drift far from their trial: the trial starts as an answer ends, takes a few answers'
    // time on the cores every side uses, and an answer that arrives meanwhile waits for it.
    // Nothing waited for it before, so it overlapped whichever samples came next (likely the
    // embedded's 2-thread trial of 6,625 ms against 2,553 for 1 in session 10). Each sample
    // starts once neither service is timing.
    const isRetiming = (e: Record<string, unknown>) => e.msg === 'llm threads re-timing';
    const isRetimed = (e: Record<string, unknown>) => e.msg === 'llm threads re-timed' || e.msg === 'llm thread count could not be timed again; the count in use stays';
    const retimeWaitMs = { embedded: 0, mesh: 0 };
    const retimesSettled = async () => {
      // The mesh llm logs the start as the answer that calls for it ends, before the api has
      // its last line: the line is in this process's pipe by now; one turn of the loop reads it.
      await new Promise((resolve) => setImmediate(resolve));
      let since = performance.now();
      await waitFor('the embedded llm to end its thread re-timing', async () => !((await node.node.broker.call('llm.info')) as { retimingThreads?: boolean }).retimingThreads, 600_000);
      retimeWaitMs.embedded += performance.now() - since;
      since = performance.now();
      await waitFor('the mesh llm to end its thread re-timing', async () => llmNode.logs().filter(isRetiming).length <= llmNode.logs().filter(isRetimed).length, 600_000);
      retimeWaitMs.mesh += performance.now() - since;
    };
    const order = Object.keys(sides);
    for (let i = 0; i < SAMPLES; i++) {
      for (let k = 0; k < order.length; k++) {
        const side = order[(i + k) % order.length]!;
        await retimesSettled();
        sides[side]!.push(await take[side]!());
      }
    }
    // LLM_THREADS=0 times the counts again when answers drift far from the load-time trial: what each side ended on.
    const embeddedEnd = (await embedded.node.broker.call('llm.info')) as { threads?: number; promptThreads?: number; threadTrials?: unknown; stepMs?: Record<number, number> | null };
    const retimed = (entries: Array<Record<string, unknown>>) => entries.filter((e) => e.msg === 'llm threads re-timed').map((e) => ({ from: e.from, to: e.to, trial_ms: e.threadTrials }));
    const meshRetimes = retimed(llmNode.logs());
    // The answers' own step times move the step count (StepCountChoice): each move, and the embedded's medians at the end.
    const stepMoves = (entries: Array<Record<string, unknown>>) => entries.filter((e) => e.msg === 'llm step threads changed').map((e) => ({ from: e.from, to: e.to, step_ms: e.stepMs }));
    const rawByThreads = Object.fromEntries(contenders.map((threads) => [threads, summary(sides[`raw${threads}`]!)]));
    const e = summary(sides.embedded!);
    const m = summary(sides.mesh!);
    const ratiosAgainst = (r: ReturnType<typeof summary>) => ({
      embedded_tokens_per_s: round(e.tokens_per_s / r.tokens_per_s, 3),
      mesh_tokens_per_s: round(m.tokens_per_s / r.tokens_per_s, 3),
      embedded_ttft: round(r.ttft_ms / e.ttft_ms, 3),
      mesh_ttft: round(r.ttft_ms / m.ttft_ms, 3),
    });
    // The baseline is the contender the service compares worst with: on two cores 1 thread can
    // decode as fast as 2 (32.1 against 29.1 tokens/s) while taking 1.7 times as long to its
    // first token (262 against 157 ms); picking by tokens/s alone then compared the service's
    // first token with raw's slower count.
    const worstRatio = (threads: number) => Math.min(...Object.values(ratiosAgainst(rawByThreads[threads]!)));
    const best = [...contenders].sort((a, b) => worstRatio(a) - worstRatio(b))[0]!;
    const r = rawByThreads[best]!;
    console.log(`raw (${best} threads) ${JSON.stringify(r)}\nembedded ${JSON.stringify(e)}\nmesh ${JSON.stringify(m)}`);
    const ratios = ratiosAgainst(r);
    // Raw's CPU per token over the service's: less sensitive than the rates to what else the machine runs.
    const cpuRatio = (side: ReturnType<typeof summary>) => (r.cpu_ms_per_token && side.cpu_ms_per_token ? round(r.cpu_ms_per_token / side.cpu_ms_per_token, 3) : null);
    console.log(
      JSON.stringify({
        bench: 'llm',
        ratio: Math.min(...Object.values(ratios)),
        goal: 0.9,
        ratios,
        ratio_by_raw_threads: Object.fromEntries(contenders.map((threads) => [threads, worstRatio(threads)])),
        cpu_ratios: { embedded: cpuRatio(e), mesh: cpuRatio(m) },
        raw: { ...r, threads: best },
        raw_sweep: sweep,
        raw_by_threads: rawByThreads,
        embedded: { ...e, threads: embeddedInfo.threads, prompt_threads: embeddedInfo.promptThreads, trial_ms: embeddedInfo.threadTrials, threads_end: embeddedEnd.threads, step_ms_end: embeddedEnd.stepMs, ...(JSON.stringify(embeddedEnd.threadTrials) !== JSON.stringify(embeddedInfo.threadTrials) ? { trial_ms_end: embeddedEnd.threadTrials } : {}) },
        mesh: { ...m, threads: meshLoaded.threads, prompt_threads: meshLoaded.promptThreads, trial_ms: meshLoaded.threadTrials, retimed: meshRetimes, step_moves: stepMoves(llmNode.logs()) },
        // Time the samples waited for a thread re-timing to end before they started.
        retime_wait_ms: { embedded: Math.round(retimeWaitMs.embedded), mesh: Math.round(retimeWaitMs.mesh) },
        cpu: { ...budget, loadAverage: round(budget.loadAverage) },
        load_average_end: round(os.loadavg()[0] ?? 0),
        model: 'random-weight Qwen2.5-0.5B shape, q8_0',
        model_load: LLAMA_MODEL_LOAD,
        max_tokens: TOKENS,
        samples: SAMPLES,
        warmups: WARMUPS,
        node_llama_cpp: '3.21.1',
        cores: os.availableParallelism(),
        node: process.version,
      }),
    );
  } finally {
    await raw?.dispose();
    await embedded?.stop();
    await mesh.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
