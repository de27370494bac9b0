import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeHfRepo } from '../test/support/hf-repo.ts';

/**
 * Writes a random-weight sentence-transformers repository (config.json, onnx/model.onnx,
 * tokenizer files, modules.json, 1_Pooling/config.json) to try `npm run models -- import`
 * without internet: `npx tsx scripts/make-hf-repo.ts <dir> [--seed 2] [--e5]`.
 */
const { values, positionals } = parseArgs({ allowPositionals: true, options: { seed: { type: 'string' }, e5: { type: 'boolean', default: false } } });
if (!positionals[0]) {
  console.error('usage: npx tsx scripts/make-hf-repo.ts <dir> [--seed N] [--e5]');
  process.exit(2);
}
const dir = path.resolve(positionals[0]);
await writeHfRepo(dir, { seed: Number(values.seed ?? 1), ...(values.e5 ? { prompts: { query: 'query: ', passage: 'passage: ' } } : {}) });
console.log(dir);
