import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureTinyLlama } from '../../test/support/tiny-gguf.ts';
import { LlamaCppBackend } from './llama.ts';
import { readCpuBudget, threadCandidates, usableCores } from './threads.ts';

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

  it('LLM_THREADS=0 times the model at each candidate count and generates with the fastest', () => {
    const candidates = threadCandidates(usableCores(readCpuBudget()));
    const trials = picked.threadTrials!;
    assert.deepEqual(Object.keys(trials).map(Number), candidates);
    assert.ok(candidates.includes(picked.threads));
    if (candidates.length > 1) {
      const fastest = Math.min(...Object.values(trials));
      assert.ok(trials[picked.threads]! <= fastest * 1.03, `picked ${picked.threads} from ${JSON.stringify(trials)}`);
    }
  });

  it('a fixed LLM_THREADS is used as given, with no trial', () => {
    assert.equal(fixed.threads, 1);
    assert.equal(fixed.threadTrials, null);
  });

  it('generates with the picked count', async () => {
    let tokens = 0;
    for await (const event of picked.generate({ messages: [{ role: 'user', content: 'Hello' }], sources: [], grounded: false, maxTokens: 4, signal: new AbortController().signal })) {
      if (event.type === 'done') tokens = event.usage.completionTokens;
    }
    assert.ok(tokens >= 1 && tokens <= 4);
  });
});
