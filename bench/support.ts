import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MINILM_L6 } from '../lib/models/tiny-bert.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import type { Stores } from '../lib/runtime/stores.ts';
import { publishRandomBert } from '../test/support/models.ts';

/**
 * Publishes a random-weight encoder in all-MiniLM-L6-v2's shape (int8) under `alias`
 * version 1 and makes it the active version: what benchmarks measure throughput on,
 * since real weights cannot be installed here and speed depends on the shape alone.
 */
export async function publishBenchEncoder(stores: Stores, alias: string, maxTokens: number) {
  const shape = { ...MINILM_L6, precision: 'int8' as const };
  const manifest = await publishRandomBert(await stores.models(), await mkdtemp(path.join(os.tmpdir(), 'bench-model-')), {
    alias,
    version: '1',
    name: 'random-weight MiniLM-L6 shape (int8)',
    shape,
    embed: { maxTokens },
  });
  const repo = new ModelsRepository((await stores.db()).knex);
  await repo.register(manifest);
  await repo.switchTo(alias, '1', 'bench');
  return { manifest };
}

/**
 * A public dataset folder (`cisi`, `xquad-en`): BENCH_DATASETS if set, else
 * ../shared/datasets next to the checkout (a git worktree sets BENCH_DATASETS).
 */
export function datasetDir(name: string): string {
  return path.join(process.env.BENCH_DATASETS ?? path.resolve(import.meta.dirname, '../../shared/datasets'), name);
}
