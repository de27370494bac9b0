import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryKeyValueStore } from '../adapters/kv/memory.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import { answerCacheKey, invalidateAnswersForDocuments, normalizeQuestion } from './answer-cache.ts';

describe('answer cache keys', () => {
  const kv = new MemoryKeyValueStore();
  const A = tenantScope('acme');
  const input = { question: 'What is the vacation policy?', chunkIds: ['c1', 'c2'], documentIds: ['d1', 'd2'], modelVersion: 'extractive@1' };

  it('are the same for the same question, sources and model, and differ per tenant', async () => {
    assert.equal(await answerCacheKey(kv, A, input), await answerCacheKey(kv, A, { ...input, question: '  what is the VACATION policy ' }));
    assert.notEqual(await answerCacheKey(kv, A, input), await answerCacheKey(kv, tenantScope('globex'), input));
    assert.notEqual(await answerCacheKey(kv, A, input), await answerCacheKey(kv, A, { ...input, chunkIds: ['c2', 'c1'] }));
    assert.notEqual(await answerCacheKey(kv, A, input), await answerCacheKey(kv, A, { ...input, modelVersion: 'extractive@2' }));
    assert.equal(normalizeQuestion('Что такое  договор?!'), 'что такое договор');
  });

  it('change when a document behind the answer changes, and only then', async () => {
    const before = await answerCacheKey(kv, A, input);
    await invalidateAnswersForDocuments(kv, A, ['d9']);
    assert.equal(await answerCacheKey(kv, A, input), before, 'another document changed');
    await invalidateAnswersForDocuments(kv, A, ['d2']);
    assert.notEqual(await answerCacheKey(kv, A, input), before);
  });
});

describe('answers of a document', () => {
  it('are removed with it: no answer citing it and no key of it stay behind', async () => {
    const { forgetDocumentAnswers, storeAnswer } = await import('./answer-cache.ts');
    const kv = new MemoryKeyValueStore();
    const A = tenantScope('acme');
    const both = await answerCacheKey(kv, A, { question: 'q1', chunkIds: ['c1', 'c3'], documentIds: ['d1', 'd3'], modelVersion: 'm' });
    const other = await answerCacheKey(kv, A, { question: 'q2', chunkIds: ['c3'], documentIds: ['d3'], modelVersion: 'm' });
    await storeAnswer(kv, A, both, ['d1', 'd3'], '{"content":"a"}');
    await storeAnswer(kv, A, other, ['d3'], '{"content":"b"}');
    await invalidateAnswersForDocuments(kv, A, ['d1']);
    assert.equal(await kv.get(both), null, 'an answer citing the changed document is gone');
    assert.equal(await kv.get(other), '{"content":"b"}');
    await forgetDocumentAnswers(kv, A, ['d1']);
    assert.deepEqual(await kv.deleteByPrefix('answers-gen:acme:d1'), [], 'no generation key of a deleted document');
    assert.deepEqual(await kv.deleteByPrefix('answers-of:acme:d1:'), []);
  });
});
