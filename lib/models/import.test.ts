import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureTinyLlama } from '../../test/support/tiny-gguf.ts';
import { buildImport, ImportRefused, planImport } from './import.ts';
import { verifyFolder } from './manifest.ts';
import { TINY_BERT } from '../../test/support/tiny-bert.ts';
import { writeHfRepo } from '../../test/support/hf-repo.ts';

describe('models import', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'models-import-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads dimension, pooling, normalization, max tokens and prompts from a sentence-transformers repository and asks only for alias and version', async () => {
    const repo = await writeHfRepo(path.join(root, 'hf'), { prompts: { query: 'query: ', passage: 'passage: ' } });
    const plan = await planImport(repo);
    assert.equal(plan.kind, 'embed');
    assert.deepEqual(plan.missing.map((q) => q.field), ['alias', 'version']);
    assert.equal(plan.answers.dimension, TINY_BERT.hidden);
    assert.equal(plan.answers.pooling, 'mean');
    assert.equal(plan.answers.normalize, true);
    assert.equal(plan.answers.maxTokens, 64);
    assert.equal(plan.answers.queryPrefix, 'query: ');
    assert.equal(plan.answers.passagePrefix, 'passage: ');
    assert.equal(plan.answers.name, 'acme/tiny-bert');
    assert.ok(plan.found.some((f) => f.field === 'pooling' && f.from === '1_Pooling/config.json'));

    plan.answers.alias = 'tiny';
    plan.answers.version = '2026-11-30';
    const dest = path.join(root, 'out');
    const manifest = await buildImport(plan, dest);
    assert.equal(manifest.embed?.engine, 'onnx');
    assert.deepEqual(manifest.files.map((f) => f.path).sort(), ['1_Pooling/config.json', 'config.json', 'config_sentence_transformers.json', 'model.onnx', 'modules.json', 'sentence_bert_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    assert.deepEqual(await verifyFolder(dest, manifest), []);
    assert.equal(JSON.parse(await readFile(path.join(dest, 'manifest.json'), 'utf8')).version, '2026-11-30');
  });

  it('without prompts asks for the prefixes too', async () => {
    const plan = await planImport(await writeHfRepo(path.join(root, 'noprompts')), { alias: 'a', version: '1' });
    assert.deepEqual(plan.missing.map((q) => q.field), ['queryPrefix', 'passagePrefix']);
    await assert.rejects(buildImport(plan, path.join(root, 'x')), /missing queryPrefix \(--query-prefix\), passagePrefix \(--passage-prefix\)/);
  });

  it('refuses a pooling config with two modes, naming the file and what was expected', async () => {
    const repo = await writeHfRepo(path.join(root, 'twomodes'), { pooling: { pooling_mode_cls_token: true } });
    await assert.rejects(planImport(repo), (err: Error) => err instanceof ImportRefused && err.file === '1_Pooling/config.json' && /exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token/.test(err.message));
  });

  it('refuses a config.json whose hidden_size is not what the graph outputs', async () => {
    const repo = await writeHfRepo(path.join(root, 'wrongdim'), { hidden: 48 });
    // The pooling config says 32 and config.json 48: refused before anything runs.
    await assert.rejects(planImport(repo), (err: Error) => err instanceof ImportRefused && err.file === '1_Pooling/config.json' && err.field === 'word_embedding_dimension');
    await rm(path.join(repo, '1_Pooling'), { recursive: true });
    await writeFile(path.join(repo, 'modules.json'), '[]');
    const plan = await planImport(repo, { alias: 'a', version: '1', pooling: 'mean', queryPrefix: '', passagePrefix: '' });
    await assert.rejects(buildImport(plan, path.join(root, 'wrongdim-out')), (err: Error) => /hidden_size|dimension/.test(err.message));
  });

  it('refuses a repository without tokenizer.json or without an ONNX graph', async () => {
    const repo = await writeHfRepo(path.join(root, 'notok'));
    await rm(path.join(repo, 'tokenizer.json'));
    await assert.rejects(planImport(repo), (err: Error) => err instanceof ImportRefused && err.file === 'tokenizer.json' && /fast-tokenizer/.test(err.message));
    const noOnnx = await writeHfRepo(path.join(root, 'noonnx'));
    await rm(path.join(noOnnx, 'onnx'), { recursive: true });
    await assert.rejects(planImport(noOnnx), (err: Error) => err instanceof ImportRefused && /onnx\/model\*\.onnx/.test(err.message));
  });

  it('reads a GGUF file as an llm and refuses a file that is not GGUF', async () => {
    const { modelPath } = await ensureTinyLlama();
    const plan = await planImport(modelPath, { alias: 'tiny-llama', version: '7' });
    assert.equal(plan.kind, 'llm');
    assert.deepEqual(plan.missing, []);
    assert.ok(plan.found.some((f) => f.field === 'architecture' && f.value === 'llama'));
    const manifest = await buildImport(plan, path.join(root, 'gguf-out'));
    assert.deepEqual(manifest.files.map((f) => f.path), ['model.gguf']);
    const fake = path.join(root, 'fake.gguf');
    await writeFile(fake, 'not a gguf at all');
    await assert.rejects(planImport(fake), (err: Error) => err instanceof ImportRefused && err.field === 'magic' && /"GGUF"/.test(err.message));
  });
});
