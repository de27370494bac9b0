/**
 * bench:search-load — searches/s and latency under concurrent closed-loop HTTP clients
 * against an embedded node (the default profile: PGlite, usearch, the bundled starter
 * embedding model), next to `/healthz` served by the same gateway in the same run.
 *
 *   ratio = lexical searches/s at c=16 / healthz requests/s at c=16     goal ≥ 0.05
 *
 * Corpus: bench:search's 100k-chunk tenant `bench` (BENCH_DATA_DIR; built by running
 * bench/search.ts first when the folder holds none). The node boots on that DATA_DIR
 * and each client signs in as that tenant with a JWT. Each client sends its next request
 * as soon as the previous one answered (closed loop), the CISI questions in turn, for
 * BENCH_SECONDS (10) per step, at concurrency 1, 4, 16 and 32 (BENCH_CONCURRENCY), for
 * `/healthz`, lexical and hybrid search (limit 10). Reported per step: requests/s, p50,
 * p95, and answers other than 200 by status (429/503 are admission control refusing at
 * once: SEARCH_CONCURRENCY, SEARCH_QUEUE_LIMIT).
 *
 * The hybrid leg's dense half embeds each question with the starter model, for real;
 * the corpus has no vectors of that model, so its kNN search finds nothing (bench:search
 * measures kNN at 100k): hybrid here measures embedding + lexical + fusion under load.
 */
import { spawnSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { bootNode } from '../boot.ts';
import { datasetDir } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LEVELS = (process.env.BENCH_CONCURRENCY ?? '1,4,16,32').split(',').map(Number);
const GOAL = 0.05;

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

interface Step {
  target: string;
  concurrency: number;
  rps: number;
  p50: number;
  p95: number;
  ok: number;
  errors: Record<string, number>;
}

async function closedLoop(target: string, concurrency: number, request: (i: number) => Promise<Response>): Promise<Step> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  let n = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          const res = await request(n++);
          await res.arrayBuffer();
          latencies.push(performance.now() - t);
          if (res.status === 200) ok++;
          else errors[res.status] = (errors[res.status] ?? 0) + 1;
        } catch (err) {
          // fetch rejects with a TypeError whose cause says what happened to the connection.
          const e = err as Error & { cause?: { code?: string; name?: string } };
          const kind = e.cause?.code ?? e.cause?.name ?? e.name;
          errors[kind] = (errors[kind] ?? 0) + 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const step = { target, concurrency, rps: r1(ok / seconds), p50: r1(pct(latencies, 50)), p95: r1(pct(latencies, 95)), ok, errors };
  console.log(`  ${target.padEnd(8)} c=${String(concurrency).padStart(2)}  ${String(step.rps).padStart(8)} /s   p50 ${String(step.p50).padStart(7)} ms   p95 ${String(step.p95).padStart(7)} ms   errors ${JSON.stringify(errors)}   load ${os.loadavg()[0]!.toFixed(2)}`);
  return step;
}

async function main(): Promise<void> {
  const dataDir = process.env.BENCH_DATA_DIR ?? path.join(os.tmpdir(), 'ragmesh-bench-search-100k');
  if (!(await stat(path.join(dataDir, 'pg')).catch(() => null))) {
    console.error(`no corpus in ${dataDir}: building it with bench/search.ts`);
    const built = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'search.ts')], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_DATA_DIR: dataDir, BENCH_QUERIES: '1', DB_DRIVER: 'pglite' },
    });
    if (built.status !== 0) throw new Error('building the corpus failed');
  }
  const queries = (await readFile(path.join(datasetDir('cisi'), 'queries.jsonl'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text.replace(/"/g, ''));

  // Capacity, not the per-user rate limit, is measured: search is unlimited here.
  const config = loadConfig({ DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'error', RATE_LIMIT_PER_USER: 'search=0,read=0', RATE_LIMIT_PER_TENANT: 'search=0,read=0', ...pick(process.env, ['SEARCH_CONCURRENCY', 'SEARCH_QUEUE_LIMIT', 'SEARCH_LEG_TIMEOUT_MS']) });
  const node = await bootNode(config, createLogger('error'));
  const base = `http://127.0.0.1:${node.httpPort}`;
  const token = await signAccessToken({ tenantId: 'bench', userId: 'bench', roles: ['viewer'] }, node.runtime.jwtSecret, { issuer: config.auth.issuer, ttlSeconds: 86_400 });
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const search = (mode: string) => (i: number) =>
    fetch(`${base}/api/v1/search`, { method: 'POST', headers, body: JSON.stringify({ query: queries[i % queries.length], mode, limit: 10 }) });

  const steps: Step[] = [];
  try {
    console.log(`bench:search-load  ${SECONDS} s per step, node ${process.version}, ${os.cpus().length} cores, SEARCH_CONCURRENCY ${config.search.concurrency}, SEARCH_QUEUE_LIMIT ${config.search.queueLimit}, corpus ${dataDir}`);
    // Warm-up: the first searches load the model and fill caches.
    for (let i = 0; i < 5; i++) for (const mode of ['lexical', 'hybrid']) await (await search(mode)(i)).arrayBuffer();
    for (const c of LEVELS) steps.push(await closedLoop('healthz', c, () => fetch(`${base}/healthz`)));
    for (const mode of ['lexical', 'hybrid']) for (const c of LEVELS) steps.push(await closedLoop(mode, c, search(mode)));
  } finally {
    await node.stop();
  }
  const at = (target: string, c: number) => steps.find((s) => s.target === target && s.concurrency === c);
  const floor = at('healthz', 16)?.rps ?? NaN;
  const lexical16 = at('lexical', 16)?.rps ?? NaN;
  const hybrid16 = at('hybrid', 16)?.rps ?? NaN;
  const errorsAt32 = ['lexical', 'hybrid'].map((t) => Object.values(at(t, 32)?.errors ?? {}).reduce((a, b) => a + b, 0));
  console.log(`  lexical c=16 / healthz c=16 = ${(lexical16 / floor).toFixed(4)} (goal ≥ ${GOAL}); hybrid ${(hybrid16 / floor).toFixed(4)}; errors at c=32: lexical ${errorsAt32[0]}, hybrid ${errorsAt32[1]}`);
  console.log(
    JSON.stringify({
      bench: 'search-load',
      ratio: Math.round((lexical16 / floor) * 10000) / 10000,
      goal: GOAL,
      hybrid_ratio: Math.round((hybrid16 / floor) * 10000) / 10000,
      healthz_rps_c16: floor,
      lexical_rps_c16: lexical16,
      lexical_p95_ms_c16: at('lexical', 16)?.p95,
      hybrid_rps_c16: hybrid16,
      hybrid_p95_ms_c16: at('hybrid', 16)?.p95,
      errors_c32: { lexical: errorsAt32[0], hybrid: errorsAt32[1] },
      steps: steps.map((s) => [s.target, s.concurrency, s.rps, s.p95, Object.values(s.errors).reduce((a, b) => a + b, 0)]),
      search_concurrency: config.search.concurrency,
      search_queue_limit: config.search.queueLimit,
      node: process.version,
      cores: os.cpus().length,
      load_avg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    }),
  );
}

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] ? [[n, env[n]!]] : [])));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
