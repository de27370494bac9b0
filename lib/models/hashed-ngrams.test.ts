import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_NGRAM_CONFIG, HashedNgramEncoder } from './hashed-ngrams.ts';

const encoder = new HashedNgramEncoder(
  { engine: 'hashed-ngrams', dimension: 1024, normalize: true, maxTokens: 512, queryPrefix: '', passagePrefix: '', config: 'config.json' },
  DEFAULT_NGRAM_CONFIG,
);
const embed = (text: string) => encoder.embed(encoder.encode(text, 'passage'));
const cos = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('hashed character n-gram starter embedder', () => {
  it('is deterministic, L2-normalized and of the declared width', () => {
    const v = embed('Поиск документов');
    assert.equal(v.length, 1024);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5);
    assert.deepEqual(embed('Поиск документов'), v);
  });

  it('matches inflected forms lexically, in Russian and English', () => {
    const query = embed('документы');
    assert.ok(cos(query, embed('поиск документов в библиотеке')) > cos(query, embed('погода на завтра солнечная')));
    const en = embed('retrieval of documents');
    assert.ok(cos(en, embed('document retrieving systems')) > cos(en, embed('weather tomorrow is sunny')));
  });

  it('is not semantic: a synonym with no shared letters does not match', () => {
    // Documented limitation: "car" and "automobile" share nothing lexically.
    assert.ok(Math.abs(cos(embed('car'), embed('automobile'))) < 0.2);
  });
});
