/**
 * bench:sse between two checkouts, side by side: a mesh from each (their own api, llm and
 * other processes, as bench:sse starts them) and the same first-token probe, the two
 * sides' requests alternated one for one. On a shared machine whose load moves by the
 * minute, one bench:sse run's p50 moves by ±4 ms on its own; two meshes probed in turns
 * see the same load, so their difference is the code's.
 *
 *   AB_A=/work/wt/other-checkout npm exec -- tsx bench/sse-ab.ts    (AB_B: this checkout)
 *
 * Each checkout needs its node_modules. Prints one JSON line: each side's p50 and p95,
 * and the share of pairs in which B was faster.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { firstTokenMs } from './support.ts';

const A = process.env.AB_A;
const B = process.env.AB_B ?? path.resolve(import.meta.dirname, '..');
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 50);
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const round = (x: number) => Math.round(x * 100) / 100;

/** A mesh of `root`'s code, started by `root`'s own test support, with a chat to ask in. */
async function meshOf(root: string) {
  const { TestMesh } = await import(path.join(root, 'test/support/mesh.ts'));
  const { httpJson } = await import(path.join(root, 'test/support/http.ts'));
  const mesh = await TestMesh.create();
  // The transport is measured, not the rate limit (as in bench:sse).
  Object.assign(mesh.env, { RATE_LIMIT_PER_USER: 'chat=0', RATE_LIMIT_PER_TENANT: 'chat=0' });
  await Promise.all([mesh.start('gateway', 'api'), mesh.start('llm', 'llm'), mesh.start('models', 'emb,ingest,analyze,maintenance')]);
  await mesh.waitForDiscovery(await mesh.token('bench', 'ops', 'admin'));
  const token = await mesh.token('bench', 'user', 'editor');
  const chat = (await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token })).body;
  const url = `${mesh.apiUrl}/api/v1/chats/${chat.id}/messages`;
  return { stop: () => mesh.stop() as Promise<void>, probe: () => firstTokenMs(url, token, { content: `hello there ${randomUUID()}`, rag: false }) };
}

async function main(): Promise<void> {
  if (!A) throw new Error('AB_A: the checkout to compare this one (or AB_B) with');
  const a = await meshOf(A);
  try {
    const b = await meshOf(B);
    try {
      for (let i = 0; i < WARMUP; i++) {
        await a.probe();
        await b.probe();
      }
      const onA: number[] = [];
      const onB: number[] = [];
      // Each side goes first in every other pair.
      for (let i = 0; i < SAMPLES; i++) {
        if (i % 2) {
          onA.push(await a.probe());
          onB.push(await b.probe());
        } else {
          onB.push(await b.probe());
          onA.push(await a.probe());
        }
      }
      console.log(
        JSON.stringify({
          bench: 'sse-ab',
          a: A,
          b: B,
          a_p50_ms: round(percentile(onA, 50)),
          b_p50_ms: round(percentile(onB, 50)),
          a_p95_ms: round(percentile(onA, 95)),
          b_p95_ms: round(percentile(onB, 95)),
          b_faster_share: round(onA.filter((x, i) => onB[i]! < x).length / SAMPLES),
          samples: SAMPLES,
          warmup: WARMUP,
          load: os.loadavg().map(round),
        }),
      );
    } finally {
      await b.stop();
    }
  } finally {
    await a.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
