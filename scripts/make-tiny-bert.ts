import path from 'node:path';
import { ensureRandomBert, MINILM_L6, TEST_MODEL_CACHE, TINY_BERT } from '../test/support/tiny-bert.ts';

/**
 * Generates the random-weight BERT test models (model.onnx + tokenizer.json) into
 * .cache/tiny-bert/ (or the folder given). Tests and bench:emb call the same function
 * themselves, so running this is never required; it is here to look at the files.
 *   npx tsx scripts/make-tiny-bert.ts [--minilm] [--int8] [folder]
 */
const args = process.argv.slice(2);
const shape = { ...(args.includes('--minilm') ? MINILM_L6 : TINY_BERT), precision: args.includes('--int8') ? ('int8' as const) : ('fp32' as const) };
const folder = args.find((a) => !a.startsWith('--'));
const made = await ensureRandomBert(folder ? path.resolve(folder) : TEST_MODEL_CACHE, shape);
console.log(`${made.dir}: hidden ${shape.hidden}, ${shape.layers} layers, ${shape.precision}, vocabulary ${made.vocabSize}`);
