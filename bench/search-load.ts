/**
 * bench:search-load — searches/s and latency under concurrent closed-loop HTTP clients
 * against the api, next to `/healthz` served by the same gateway in the same run.
 *
 *   ratio = lexical searches/s at c=16 / healthz requests/s at c=16     goal ≥ 0.05
 *
 * BENCH_PROFILE=embedded (default): one node (PGlite, usearch, the bundled starter
 * embedding model) started as `npm start` starts it, in a process of its own, on
 * bench:search's 100k-chunk corpus in BENCH_DATA_DIR (built by running bench/search.ts
 * first when the folder holds none).
 * BENCH_PROFILE=mesh: DATABASE_URL names a PostgreSQL database holding bench:search's
 * corpus (`DB_DRIVER=pg DATABASE_URL=… npm run bench:search` builds it); the api and emb
 * run as processes of their own on RabbitMQ and Redis (test/support/mesh.ts, as
 * bench:sse), vectors in PostgreSQL arrays (no Qdrant here).
 *
 * Each client signs in as tenant `bench` and sends its next request as soon as the
 * previous one is done (closed loop), the CISI questions in turn, for BENCH_SECONDS (10)
 * per step, at concurrency 1, 4, 16 and 32 (BENCH_CONCURRENCY), for `/healthz`, lexical
 * and hybrid search (limit 10). Rate limits are lifted (capacity is measured).
 *
 * What counts: a search is done when it gets its 200. A 503 OVERLOADED (or 429) with
 * Retry-After is admission control refusing at once: the client is told when to come
 * back, and does — it waits Retry-After (plus up to 25 % jitter) and sends the same
 * search again, as a well-behaved client would. Such refusals are counted and timed
 * apart ("refused", their p95), not as errors. An error is anything else: another
 * status, a 503 without Retry-After or of another code (SEARCH_UNAVAILABLE: no leg
 * answered in time — the timeout cascade), a dropped connection. Per step: searches/s
 * (200s), p50/p95 of the answered attempts, p95 from the first attempt to the 200
 * (retries included), refusals and their p95, errors by kind, and the CPU time the
 * serving processes spent per answer (from /proc: the node, or the api, emb and the
 * PostgreSQL backends of the corpus' database) — what the cores a given rate needs are
 * estimated from, whatever else loads the machine.
 *
 * The hybrid leg's dense half embeds each question with the starter model, for real;
 * the corpus has no vectors of that model, so its kNN search finds nothing (bench:search
 * measures kNN at 100k): hybrid here measures embedding + lexical + fusion under load.
 */
import { execSync, spawnSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import pg from 'pg';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../lib/config/env.ts';
import { TestMesh } from '../test/support/mesh.ts';
import { freePort, runScript, startNode } from '../test/support/processes.ts';
import { datasetDir, processCpuMs, waitForHeldPostings } from './support.ts';

const PROFILE = process.env.BENCH_PROFILE === 'mesh' ? 'mesh' : 'embedded';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LEVELS = (process.env.BENCH_CONCURRENCY ?? '1,4,16,32').split(',').map(Number);
const MODES = (process.env.BENCH_MODES ?? 'lexical,hybrid').split(',');
const GOAL = 0.05;
/** What the api may be told by env for this run (admission control, timeouts, pools). */
const PASSED = ['SEARCH_CONCURRENCY', 'SEARCH_QUEUE_LIMIT', 'SEARCH_QUEUE_WAIT_MS', 'SEARCH_LEG_TIMEOUT_MS', 'DB_POOL_MAX', 'PGLITE_THREAD'];
const NO_LIMITS = { RATE_LIMIT_PER_USER: 'search=0,read=0', RATE_LIMIT_PER_TENANT: 'search=0,read=0' };

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

interface Step {
  target: string;
  concurrency: number;
  rps: number;
  p50: number;
  p95: number;
  /** From a search's first attempt to its 200, waits after refusals included. */
  p95WithRetries: number;
  ok: number;
  refused: number;
  refusedP95: number;
  errors: Record<string, number>;
  /** CPU time the serving processes spent per answered request (ms), refusals' share included. */
  cpuMs: number;
  /** The same by process kind (node, api, emb, db). */
  cpuSplit: Record<string, number>;
}

/**
 * CPU time (user + system, ms) of each process, from /proc (a process gone meanwhile is
 * left out); and of the embedded node's main thread (a negative key), beside the total, not in it:
 * with PGlite on a thread of its own, the embedded node's busiest thread bounds its rate.
 */
async function cpuOf(servers: Array<[string, number]>): Promise<Map<number, [string, number]>> {
  const out = new Map<number, [string, number]>();
  for (const [kind, pid] of servers) {
    const ms = processCpuMs(pid);
    if (ms !== null) out.set(pid, [kind, ms]);
    const main = kind === 'node' ? processCpuMs(pid, pid) : null;
    if (main !== null) out.set(-pid, ['node_main_thread', main]);
  }
  return out;
}

async function closedLoop(target: string, concurrency: number, request: (i: number) => Promise<Response>, servers: () => Promise<Array<[string, number]>>): Promise<Step> {
  const cpuBefore = await cpuOf(await servers());
  const latencies: number[] = [];
  const withRetries: number[] = [];
  const refusals: number[] = [];
  const errors: Record<string, number> = {};
  let ok = 0;
  let n = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const i = n++;
        const first = performance.now();
        // The same search again after each refusal, until it is answered or the step ends.
        while (performance.now() < until) {
          const t = performance.now();
          let res: Response;
          let body: string;
          try {
            res = await request(i);
            body = await res.text();
          } catch (err) {
            // fetch rejects with a TypeError whose cause says what happened to the connection.
            const e = err as Error & { cause?: { code?: string; name?: string } };
            const kind = e.cause?.code ?? e.cause?.name ?? e.name;
            errors[kind] = (errors[kind] ?? 0) + 1;
            break;
          }
          const ms = performance.now() - t;
          if (res.status === 200) {
            ok++;
            latencies.push(ms);
            withRetries.push(performance.now() - first);
            break;
          }
          const code = res.status >= 400 ? codeOf(body) : '';
          const retryAfter = Number(res.headers.get('retry-after'));
          if ((code === 'OVERLOADED' || code === 'RATE_LIMITED') && retryAfter > 0) {
            refusals.push(ms);
            await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 * (1 + 0.25 * Math.random())));
            continue;
          }
          const kind = `${res.status}${code ? ` ${code}` : ''}`;
          errors[kind] = (errors[kind] ?? 0) + 1;
          break;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = await cpuOf(await servers());
  let cpu = 0;
  const split: Record<string, number> = {};
  for (const [pid, [kind, ms]] of cpuAfter) {
    const spent = ms - (cpuBefore.get(pid)?.[1] ?? 0);
    if (pid > 0) cpu += spent;
    split[kind] = (split[kind] ?? 0) + spent;
  }
  const perAnswer = (ms: number) => Math.round((ms / Math.max(1, ok)) * 100) / 100;
  const step: Step = {
    target,
    concurrency,
    rps: r1(ok / seconds),
    p50: r1(pct(latencies, 50)),
    p95: r1(pct(latencies, 95)),
    p95WithRetries: r1(pct(withRetries, 95)),
    ok,
    refused: refusals.length,
    refusedP95: r1(pct(refusals, 95)),
    errors,
    cpuMs: perAnswer(cpu),
    cpuSplit: Object.fromEntries(Object.entries(split).map(([k, v]) => [k, perAnswer(v)])),
  };
  console.log(
    `  ${target.padEnd(8)} c=${String(concurrency).padStart(2)}  ${String(step.rps).padStart(8)} /s   p50 ${String(step.p50).padStart(7)} ms   p95 ${String(step.p95).padStart(7)} ms` +
      (target === 'healthz' ? '' : `   p95 with retries ${String(step.p95WithRetries).padStart(7)} ms   refused ${step.refused} (p95 ${step.refusedP95} ms)`) +
      `   errors ${JSON.stringify(errors)}   cpu ${step.cpuMs} ms/answer ${JSON.stringify(step.cpuSplit)}   load ${os.loadavg()[0]!.toFixed(2)}`,
  );
  return step;
}

function codeOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: { code?: string } }).error?.code ?? '');
  } catch {
    return '';
  }
}

interface Target {
  base: string;
  token: string;
  settings: Record<string, unknown>;
  /** The processes that serve (api, emb, PGlite's node, PostgreSQL's backends of the corpus' database). */
  servers(): Promise<Array<[string, number]>>;
  stop(): Promise<void>;
}

async function embedded(): Promise<Target> {
  const dataDir = process.env.BENCH_DATA_DIR ?? path.join(os.tmpdir(), 'ragmesh-bench-search-100k');
  if (!(await stat(path.join(dataDir, 'pg')).catch(() => null))) {
    console.error(`no corpus in ${dataDir}: building it with bench/search.ts`);
    const built = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'search.ts')], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_DATA_DIR: dataDir, BENCH_QUERIES: '1', DB_DRIVER: 'pglite' },
    });
    if (built.status !== 0) throw new Error('building the corpus failed');
  }
  // The node runs in a process of its own, as `npm start` does: clients in the node's own
  // process were served by its event loop, which PGlite blocks for a whole statement, so
  // they read even a quick answer a search or two late.
  const env: Record<string, string> = { DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(await freePort()), LOG_LEVEL: 'info', ...NO_LIMITS, ...pick(process.env, PASSED) };
  // BENCH_API_NODE_OPTIONS: as for the mesh's api (profiling the node under this load).
  const node = startNode('embedded', process.env.BENCH_API_NODE_OPTIONS ? { ...env, NODE_OPTIONS: process.env.BENCH_API_NODE_OPTIONS } : env);
  try {
    await node.waitForLog((e) => e.msg === 'ragmesh ready', 300_000);
  } catch (err) {
    await node.stop();
    throw err;
  }
  const made = await runScript('scripts/token.ts', ['--tenant', 'bench', '--user', 'bench', '--role', 'viewer'], env);
  if (made.code !== 0) throw new Error(`token: ${made.stderr}`);
  const config = loadConfig(env);
  return { base: `http://127.0.0.1:${env.PORT}`, token: made.stdout.trim(), settings: { corpus: dataDir, db: 'pglite', pglite_thread: config.db.pgliteThread ?? 'main', ...config.search, db_pool_max: null }, servers: async () => [['node', node.child.pid!]], stop: async () => void (await node.stop()) };
}

async function mesh(): Promise<Target> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('BENCH_PROFILE=mesh needs DATABASE_URL: the PostgreSQL database holding bench:search\'s corpus');
  const m = await TestMesh.create({ DATABASE_URL: databaseUrl, ...NO_LIMITS, ...pick(process.env, PASSED) });
  try {
    // BENCH_API_NODE_OPTIONS: e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile the api under this load.
    await Promise.all([m.start('gateway', 'api', process.env.BENCH_API_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_API_NODE_OPTIONS } : {}), m.start('models', 'emb')]);
  } catch (err) {
    await m.stop();
    throw err;
  }
  const config = loadConfig(m.env);
  // PostgreSQL's backends serving the corpus' database run on this machine: their CPU is the search's too.
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  const backends = async () =>
    (await admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()')).rows.map((r) => r.pid);
  return {
    base: m.apiUrl,
    token: await m.token('bench', 'bench', 'viewer'),
    settings: { corpus: databaseUrl.replace(/\/\/[^@]*@/, '//'), db: 'pg', ...config.search, db_pool_max: config.db.poolMax },
    servers: async () => [...m.processes.map((p): [string, number] => [p.name === 'gateway' ? 'api' : 'emb', p.child.pid!]), ...(await backends()).map((pid): [string, number] => ['db', pid])],
    stop: async () => {
      await admin.end();
      await m.stop();
    },
  };
}

async function main(): Promise<void> {
  const queries = (await readFile(path.join(datasetDir('cisi'), 'queries.jsonl'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text.replace(/"/g, ''));
  const loadAtStart = load();
  const target = PROFILE === 'mesh' ? await mesh() : await embedded();
  const headers = { Authorization: `Bearer ${target.token}`, 'Content-Type': 'application/json' };
  const search = (mode: string) => (i: number) =>
    fetch(`${target.base}/api/v1/search`, { method: 'POST', headers, body: JSON.stringify({ query: queries[i % queries.length], mode, limit: 10 }) });

  const steps: Step[] = [];
  try {
    console.log(`bench:search-load  ${PROFILE}, ${SECONDS} s per step, node ${process.version}, ${os.cpus().length} cores, ${JSON.stringify(target.settings)}`);
    // Warm-up: the first searches load the model, fill caches and give admission control its first service times.
    for (let i = 0; i < 5; i++) {
      for (const mode of MODES) {
        const res = await search(mode)(i);
        if (res.status !== 200) throw new Error(`warm-up ${mode} search: ${res.status} ${await res.text()}`);
        const degraded = ((await res.json()) as { degraded: unknown }).degraded;
        if (degraded) console.log(`  warm-up ${mode} search degraded: ${JSON.stringify(degraded)}`);
      }
    }
    // The first search of the tenant started building its postings in the api's memory
    // (SQL answers meanwhile): measured once they are held, as a serving api has them.
    const waited = Number(target.settings.lexicalMemoryBytes) > 0 ? await waitForHeldPostings(target.base, 600_000) : null;
    console.log(
      waited === null
        ? '  lexical postings not held in memory (off, over SEARCH_LEXICAL_MEMORY_MB, or slow to build): the lexical leg reads SQL'
        : `  lexical postings held after ${(waited / 1000).toFixed(1)} s`,
    );
    for (const c of LEVELS) steps.push(await closedLoop('healthz', c, () => fetch(`${target.base}/healthz`), target.servers));
    for (const mode of MODES) for (const c of LEVELS) steps.push(await closedLoop(mode, c, search(mode), target.servers));
  } finally {
    await target.stop();
  }
  const at = (name: string, c: number) => steps.find((s) => s.target === name && s.concurrency === c);
  const floor = at('healthz', 16)?.rps ?? NaN;
  const ratio = (mode: string) => Math.round(((at(mode, 16)?.rps ?? NaN) / floor) * 10000) / 10000;
  const errorsAt32 = Object.fromEntries(MODES.map((m) => [m, sum(at(m, 32)?.errors ?? {})]));
  const refusedAt32 = Object.fromEntries(MODES.map((m) => [m, at(m, 32)?.refused ?? null]));
  console.log(
    `  lexical c=16 / healthz c=16 = ${ratio('lexical').toFixed(4)} (goal ≥ ${GOAL}); hybrid ${ratio('hybrid').toFixed(4)}; errors at c=32: ${JSON.stringify(errorsAt32)} (goal 0), refused at once with Retry-After and retried: ${JSON.stringify(refusedAt32)}`,
  );
  let commit = '';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  console.log(
    JSON.stringify({
      bench: 'search-load',
      profile: PROFILE,
      ratio: ratio('lexical'),
      goal: GOAL,
      hybrid_ratio: ratio('hybrid'),
      healthz_rps_c16: floor,
      lexical_rps_c16: at('lexical', 16)?.rps,
      lexical_p95_ms_c16: at('lexical', 16)?.p95,
      hybrid_rps_c16: at('hybrid', 16)?.rps,
      hybrid_p95_ms_c16: at('hybrid', 16)?.p95,
      errors_c32: errorsAt32,
      refused_c32: refusedAt32,
      // CPU of the serving processes per answered search at c=1 (ms): what the cores estimate in docs/search.md is made of
      cpu_ms_per_search_c1: Object.fromEntries(MODES.map((m) => [m, at(m, 1)?.cpuMs ?? null])),
      cpu_split_c1: Object.fromEntries([['healthz', at('healthz', 1)?.cpuSplit], ...MODES.map((m) => [m, at(m, 1)?.cpuSplit])]),
      // [target, c, ok/s, p50 ms, p95 ms, p95 with retries ms, refused, refusal p95 ms, errors, server CPU ms per answer]
      steps: steps.map((s) => [s.target, s.concurrency, s.rps, s.p50, s.p95, s.p95WithRetries, s.refused, s.refusedP95, sum(s.errors), s.cpuMs]),
      settings: target.settings,
      node: process.version,
      cores: os.cpus().length,
      commit,
      load_avg_start: loadAtStart,
      load_avg: load(),
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
