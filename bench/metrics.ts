/**
 * bench:metrics — what recording Prometheus metrics costs in request rate. Two api
 * processes of the embedded default, identical but for METRICS=true/false, take the
 * same closed-loop load (CONCURRENCY requests in flight) in alternating rounds, so
 * machine noise hits both alike; each side's rate is the median of its rounds.
 *
 *   ratio = overhead % = (CPU per request with metrics / CPU per request without − 1) × 100
 *           goal ≤ 3, lower is better
 *
 * CPU time per request (utime+stime of the api process over every request it served)
 * sets the request rate a core sustains, and unlike wall-clock rate it does not swing
 * with what else the machine runs; the wall-clock rates are reported beside it.
 *
 * The request is GET /api/version: the gateway, one action call, no database — the
 * lightest request there is, where the fixed per-request cost of metrics weighs the most. While the
 * bench runs, /metrics of the metrics side is scraped at the scrape_interval of
 * deploy/prometheus/prometheus.yml, as Prometheus would.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { freePort, ROOT, startNode, type NodeProcess } from '../test/support/processes.ts';
import { tempDir } from '../test/support/services.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 2500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const parseDuration = (d: string) => Number(/^(\d+)s$/.exec(d)![1]) * 1000;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function startApi(metrics: boolean, secret: string) {
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
    const before = cpuSeconds(node.child.pid!);
    await new Promise((r) => setTimeout(r, 1000));
    if (cpuSeconds(node.child.pid!) - before < 0.03) break;
  }
  return { base, pid: node.child.pid!, async stop() { await node.stop(); await dir.dispose(); } };
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Requests completed in `ms` with `CONCURRENCY` in flight: per second, and how many. */
async function load(url: string, token: string, ms: number): Promise<{ rps: number; count: number }> {
  const until = performance.now() + ms;
  let done = 0;
  const worker = async () => {
    while (performance.now() < until) {
      const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { rps: done / ((performance.now() - started) / 1000), count: done };
}

async function main(): Promise<void> {
  const secret = randomBytes(32).toString('hex');
  const [withMetrics, without] = await Promise.all([startApi(true, secret), startApi(false, secret)]);
  const token = await signAccessToken({ tenantId: 'bench', userId: 'user', roles: ['viewer'] }, secret, { issuer: 'ragmesh', ttlSeconds: 3600 });
  const scrapeEvery = parseDuration((parse(await readFile(`${ROOT}/deploy/prometheus/prometheus.yml`, 'utf8')) as { global: { scrape_interval: string } }).global.scrape_interval);
  const scraper = setInterval(() => void fetch(`${withMetrics.base}/metrics`).then((r) => r.text()).catch(() => undefined), scrapeEvery);
  try {
    // Without metrics /metrics answers 404: make sure the switch really is off.
    if ((await fetch(`${without.base}/metrics`)).status === 200) throw new Error('METRICS=false still serves /metrics');
    await load(`${withMetrics.base}/api/version`, token, 1500);
    await load(`${without.base}/api/version`, token, 1500);
    const on: number[] = [];
    const off: number[] = [];
    const cpu = { on: 0, off: 0 };
    const served = { on: 0, off: 0 };
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? [true, false] : [false, true];
      for (const side of order) {
        const api = side ? withMetrics : without;
        const before = cpuSeconds(api.pid);
        const { rps, count } = await load(`${api.base}/api/version`, token, ROUND_MS);
        cpu[side ? 'on' : 'off'] += cpuSeconds(api.pid) - before;
        served[side ? 'on' : 'off'] += count;
        (side ? on : off).push(rps);
      }
    }
    const perRequest = { on: (cpu.on / served.on) * 1e6, off: (cpu.off / served.off) * 1e6 };
    const overhead = (perRequest.on / perRequest.off - 1) * 100;
    console.log(`GET /api/version: ${round(perRequest.on, 0)} µs CPU/request with metrics, ${round(perRequest.off, 0)} µs without; ${round(median(on), 0)} req/s with, ${round(median(off), 0)} req/s without (rounds: ${on.map((x) => round(x, 0)).join(' ')} | ${off.map((x) => round(x, 0)).join(' ')})`);
    console.log(
      JSON.stringify({
        bench: 'metrics',
        ratio: round(overhead),
        goal: 3,
        lower_is_better: true,
        unit: '% more CPU per request with metrics',
        with_metrics_cpu_us_per_request: round(perRequest.on, 1),
        without_metrics_cpu_us_per_request: round(perRequest.off, 1),
        requests: served,
        with_metrics_rps_median: round(median(on), 1),
        without_metrics_rps_median: round(median(off), 1),
        rps_overhead_pct: round((1 - median(on) / median(off)) * 100),
        rounds: ROUNDS,
        round_ms: ROUND_MS,
        concurrency: CONCURRENCY,
        request: 'GET /api/version',
        scrape_every_ms: scrapeEvery,
        prom_client: (await import('prom-client/package.json', { with: { type: 'json' } })).default.version,
        cores: os.cpus().length,
        node: process.version,
      }),
    );
  } finally {
    clearInterval(scraper);
    await Promise.all([withMetrics.stop(), without.stop()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
