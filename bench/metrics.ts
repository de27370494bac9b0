/**
 * bench:metrics — what recording Prometheus metrics costs in request rate. Two api
 * processes of the embedded default, started the same way and identical but for
 * METRICS=true/false, serve GET /api/version (the gateway, one action call, no database:
 * the lightest request there is, where the fixed per-request cost of metrics weighs most).
 *
 *   ratio = overhead % = (CPU per request with metrics / CPU per request without − 1) × 100
 *                        + the CPU of Prometheus's scrapes spread over the requests between them
 *           goal ≤ 3, lower is better
 *
 * CPU per request (all threads of the api process, from /proc/PID/task/*\/schedstat in ns)
 * sets the request rate a core sustains and, unlike wall-clock rate, does not swing with
 * what else this shared machine runs.
 *
 * Two processes differ by more than the switch: where their heaps, code and threads
 * landed made one pair of them measure +3 % and the next +8 % with the same build, while
 * the rounds within one pair agreed to a percent. So the bench starts PAIRS fresh pairs
 * one after the other, and in every pair both processes (pinned to the same core, see
 * pinCores) first serve WARMUP requests each (the JIT and the caches settle: CPU per
 * request falls by half over the first ~20,000 on these machines), then ROUNDS rounds of
 * REQUESTS requests per side, loaded in the same seconds, with the order alternating
 * (on/off, off/on, …). Which process is spawned first and named first swaps from pair to
 * pair. A pair's overhead is the median of its rounds' ratios; the request path's
 * overhead is the median over the pairs, and the spread of the pairs is printed with it.
 * The scrape's own cost is measured apart (the metrics side scraped SCRAPES times after
 * the rounds, CPU per scrape) and spread over the requests of one scrape_interval of
 * deploy/prometheus/prometheus.yml at the metrics side's measured request rate.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { parse } from 'yaml';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { freePort, ROOT, startNode, type NodeProcess } from '../test/support/processes.ts';
import { tempDir } from '../test/support/services.ts';

const WARMUP = Number(process.env.BENCH_WARMUP ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const SCRAPES = 6;
const PATH = '/api/version';
const parseDuration = (d: string) => Number(/^(\d+)s$/.exec(d)![1]) * 1000;
const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

interface Api {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

async function startApi(metrics: boolean, secret: string): Promise<Api> {
  const dir = await tempDir();
  const port = await freePort();
  const node: NodeProcess = startNode(`api-metrics-${metrics}`, { DATA_DIR: dir.value, PORT: String(port), JWT_SECRET: secret, LOG_LEVEL: 'warn', METRICS: String(metrics) });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/readyz`).catch(() => null))?.ok) break;
    if (node.child.exitCode !== null || i > 3000) throw new Error(`api did not start: ${node.stderr.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Ready is not idle: the embedded default keeps publishing and loading its bundled
  // models for a while. Measure only once the process has settled (< 3 % of a core).
  for (let i = 0; i < 240; i++) {
    const before = cpuNs(node.child.pid!);
    await new Promise((r) => setTimeout(r, 1000));
    if (cpuNs(node.child.pid!) - before < 0.03e9) break;
  }
  return { base, pid: node.child.pid!, async stop() { await node.stop(); await dir.dispose(); } };
}

/**
 * Both api processes (every thread) on the last core, this load generator on the
 * others. Loaded at once but left to the scheduler, the two sides landed on different
 * cores for a whole run and one of them kept a cache or a neighbour the other did not:
 * the same build measured +3.2 % and +7.8 % in two runs a minute apart. Sharing one core
 * they see the same conditions. Returns what was pinned, for the record.
 */
function pinCores(...pids: number[]): string {
  const cores = os.availableParallelism();
  if (cores < 2) return 'not pinned (one core)';
  const last = cores - 1;
  try {
    for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', String(last), String(pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-p', '-c', `0-${last - 1}`, String(process.pid)], { stdio: 'ignore' });
    return `both apis on core ${last}, the load generator on 0-${last - 1}`;
  } catch (err) {
    return `not pinned (${(err as Error).message.split('\n')[0]})`;
  }
}

/** CPU nanoseconds used by every thread of a process (main, libuv pool, V8 helpers). */
function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return total;
}

function threads(pid: number): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/**
 * `count` requests to each api at once, CONCURRENCY/2 in flight per side, both sides
 * served in the same seconds: whatever else the shared machine runs meanwhile (other
 * processes, frequency, caches) weighs on both sides alike, so their ratio keeps only
 * what differs between them. Returns CPU ns per request and requests per second of each.
 */
async function loadBoth(a: Api, b: Api, token: string, count: number): Promise<[LoadResult, LoadResult]> {
  const side = async (api: Api): Promise<LoadResult> => {
    let issued = 0;
    const worker = async () => {
      while (issued < count) {
        issued++;
        const res = await fetch(`${api.base}${PATH}`, { headers: { Authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      }
    };
    const cpuBefore = cpuNs(api.pid);
    const started = performance.now();
    await Promise.all(Array.from({ length: Math.max(1, CONCURRENCY >> 1) }, worker));
    const seconds = (performance.now() - started) / 1000;
    return { cpuPerRequestNs: (cpuNs(api.pid) - cpuBefore) / count, rps: count / seconds };
  };
  return Promise.all([side(a), side(b)]);
}

interface LoadResult {
  cpuPerRequestNs: number;
  rps: number;
}

/** CPU ns the api spends answering one GET /metrics. */
async function scrapeCost(api: Api): Promise<{ cpuNs: number; bytes: number }> {
  const before = cpuNs(api.pid);
  const res = await fetch(`${api.base}/metrics`);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}`);
  return { cpuNs: cpuNs(api.pid) - before, bytes: body.length };
}

async function version(pkg: string): Promise<string> {
  return (JSON.parse(await readFile(`${ROOT}/node_modules/${pkg}/package.json`, 'utf8')) as { version: string }).version;
}

interface PairResult {
  metricsFirst: boolean;
  on: LoadResult[];
  off: LoadResult[];
  ratios: number[];
  /** (median ratio of the rounds − 1) × 100 */
  overheadPct: number;
  scrapes: Array<{ cpuNs: number; bytes: number }>;
  threads: { with_metrics: number; without: number };
  pinned: string;
}

/** One fresh pair of api processes, measured as the header says. */
async function runPair(index: number, secret: string, token: string): Promise<PairResult> {
  // Spawned (and named in each round) in the other order than the pair before.
  const metricsFirst = index % 2 === 0;
  const started = metricsFirst ? await Promise.all([startApi(true, secret), startApi(false, secret)]) : (await Promise.all([startApi(false, secret), startApi(true, secret)])).reverse();
  const [withMetrics, without] = started as [Api, Api];
  try {
    const pinned = pinCores(withMetrics.pid, without.pid);
    // Without metrics /metrics answers 404: make sure the switch really is off.
    if ((await fetch(`${without.base}/metrics`)).status === 200) throw new Error('METRICS=false still serves /metrics');
    await loadBoth(withMetrics, without, token, WARMUP);
    const on: LoadResult[] = [];
    const off: LoadResult[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Which side's requests are issued first alternates, so neither always leads.
      if ((i % 2 === 0) === metricsFirst) {
        const [m, n] = await loadBoth(withMetrics, without, token, REQUESTS);
        on.push(m);
        off.push(n);
      } else {
        const [n, m] = await loadBoth(without, withMetrics, token, REQUESTS);
        on.push(m);
        off.push(n);
      }
    }
    // Scrapes measured after the rounds, not between them: a scrape's garbage and its
    // store reads finish after its response and would land in the next round of either side.
    const scrapes: Array<{ cpuNs: number; bytes: number }> = [];
    for (let i = 0; i < SCRAPES; i++) {
      scrapes.push(await scrapeCost(withMetrics));
      await new Promise((r) => setTimeout(r, 200));
    }
    const ratios = on.map((r, i) => r.cpuPerRequestNs / off[i]!.cpuPerRequestNs);
    return {
      metricsFirst,
      on,
      off,
      ratios,
      overheadPct: (median(ratios) - 1) * 100,
      scrapes,
      threads: { with_metrics: threads(withMetrics.pid), without: threads(without.pid) },
      pinned,
    };
  } finally {
    await Promise.all([withMetrics.stop(), without.stop()]);
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  const secret = randomBytes(32).toString('hex');
  const token = await signAccessToken({ tenantId: 'bench', userId: 'user', roles: ['viewer'] }, secret, { issuer: 'ragmesh', ttlSeconds: 3600 });
  const scrapeEvery = parseDuration((parse(await readFile(`${ROOT}/deploy/prometheus/prometheus.yml`, 'utf8')) as { global: { scrape_interval: string } }).global.scrape_interval);
  const pairs: PairResult[] = [];
  const us = (ns: number) => round(ns / 1000, 1);
  console.log(`GET ${PATH}: ${PAIRS} fresh pairs of processes, each ${ROUNDS} rounds of ${REQUESTS} requests per side after ${WARMUP} each to warm up`);
  for (let p = 0; p < PAIRS; p++) {
    const pair = await runPair(p, secret, token);
    pairs.push(pair);
    console.log(
      `  pair ${p + 1} (${pair.metricsFirst ? 'metrics' : 'no metrics'} first, load ${round(os.loadavg()[0]!)}): +${round(pair.overheadPct)} %; ` +
        `µs CPU/request on ${us(median(pair.on.map((r) => r.cpuPerRequestNs)))} off ${us(median(pair.off.map((r) => r.cpuPerRequestNs)))}; ` +
        `round ratios ${pair.ratios.map((r) => round(r, 3)).join(' ')}`,
    );
  }
  const pairPcts = pairs.map((p) => p.overheadPct);
  const requestPathPct = median(pairPcts);
  const on = pairs.flatMap((p) => p.on);
  const off = pairs.flatMap((p) => p.off);
  const onRps = median(on.map((r) => r.rps));
  const scrapes = pairs.flatMap((p) => p.scrapes);
  const scrapeCpuNs = median(scrapes.map((s) => s.cpuNs));
  const offCpuNs = median(off.map((r) => r.cpuPerRequestNs));
  // One scrape's CPU shared by the requests served between two scrapes.
  const scrapePerRequestNs = scrapeCpuNs / ((onRps * scrapeEvery) / 1000);
  const scrapePct = (scrapePerRequestNs / offCpuNs) * 100;
  const overhead = requestPathPct + scrapePct;
  console.log(
    `  request path +${round(requestPathPct)} % (median of the pairs; pairs ${pairPcts.map((x) => round(x)).join(', ')}); ` +
      `one scrape ${round(scrapeCpuNs / 1e6, 1)} ms CPU every ${scrapeEvery / 1000} s at ${round(onRps, 0)} req/s = +${round(scrapePct)} %`,
  );
  const [promClient, moleculer, moleculerWeb] = await Promise.all([version('prom-client'), version('moleculer'), version('moleculer-web')]);
  console.log(
    JSON.stringify({
      bench: 'metrics',
      ratio: round(overhead),
      goal: 3,
      lower_is_better: true,
      unit: '% more CPU per request with metrics (request path + amortised scrapes)',
      request_path_overhead_pct: round(requestPathPct),
      request_path_overhead_pct_per_pair: pairPcts.map((x) => round(x)),
      request_path_overhead_pct_all_rounds_median: round((median(pairs.flatMap((p) => p.ratios)) - 1) * 100),
      scrape_overhead_pct: round(scrapePct),
      with_metrics_cpu_us_per_request_median: us(median(on.map((r) => r.cpuPerRequestNs))),
      without_metrics_cpu_us_per_request_median: us(offCpuNs),
      with_metrics_rps_median: round(onRps, 1),
      without_metrics_rps_median: round(median(off.map((r) => r.rps)), 1),
      scrape_cpu_ms_median: round(scrapeCpuNs / 1e6, 2),
      scrape_bytes: scrapes.at(-1)!.bytes,
      scrape_every_ms: scrapeEvery,
      pairs: PAIRS,
      warmup_requests: WARMUP,
      rounds_per_pair: ROUNDS,
      requests_per_round: REQUESTS,
      concurrency: CONCURRENCY,
      request: `GET ${PATH}`,
      api_threads: pairs[0]!.threads,
      // startNode passes only the variables given above: the api processes run libuv's default pool.
      uv_threadpool_size: 4,
      cores: os.cpus().length,
      pinned: pairs[0]!.pinned,
      loadavg_1m: { start: round(loadBefore[0]!), end: round(os.loadavg()[0]!) },
      node: process.version,
      prom_client: promClient,
      moleculer,
      moleculer_web: moleculerWeb,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
