import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import { httpJson } from '../support/http.ts';
import { syntheticText, type TestMesh } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

/**
 * The fault suite's tools: the machine's services stopped and started with the
 * commands of the machine notes (always left running), a load of concurrent uploads
 * that retries what the api refuses as a client would, a search probe that times
 * every answer, and the counts each scenario prints and asserts.
 */

const run = promisify(execFile);

async function sh(command: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run(command, args, { timeout: timeoutMs });
  return stdout;
}

const portOpen = (port: number, host = '127.0.0.1') =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, host);
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });

const pgVersion = () => readdirSync('/etc/postgresql')[0]!;

export const services = {
  async pgUp(): Promise<boolean> {
    return sh('pg_isready', ['-q', '-h', '127.0.0.1']).then(() => true, () => false);
  },
  async pgStop(): Promise<void> {
    await sh('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'stop', '-m', 'fast']);
  },
  async pgStart(): Promise<void> {
    if (!(await services.pgUp())) await sh('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'start']).catch(() => undefined);
    await waitFor('PostgreSQL to accept connections', () => services.pgUp(), 60_000);
  },
  async redisUp(): Promise<boolean> {
    return sh('redis-cli', ['-h', '127.0.0.1', 'ping'], 3000).then((out) => out.trim() === 'PONG', () => false);
  },
  /** CLIENT PAUSE ends by itself after `ms`. */
  async redisPause(ms: number): Promise<void> {
    await sh('redis-cli', ['-h', '127.0.0.1', 'client', 'pause', String(ms), 'all']);
  },
  async redisShutdown(): Promise<void> {
    await sh('redis-cli', ['-h', '127.0.0.1', 'shutdown', 'nosave']).catch(() => undefined); // the connection closes under it
    await waitFor('Redis to stop', async () => !(await portOpen(6379)), 10_000);
  },
  async redisStart(): Promise<void> {
    if (!(await portOpen(6379))) {
      await sh('mkdir', ['-p', '/var/lib/redis', '/var/log/redis']);
      await sh('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', '6379', '--save', '', '--appendonly', 'no', '--dir', '/var/lib/redis', '--logfile', '/var/log/redis/ci.log']);
    }
    await waitFor('Redis to answer', () => services.redisUp(), 30_000);
  },
  async rabbitUp(): Promise<boolean> {
    return portOpen(5672);
  },
  async rabbitStopApp(): Promise<void> {
    await sh('rabbitmqctl', ['-q', 'stop_app']);
  },
  async rabbitStartApp(): Promise<void> {
    if (!(await portOpen(5672))) {
      // The node may be running with the app stopped, or not running at all.
      const started = await sh('rabbitmqctl', ['-q', 'start_app']).then(() => true, () => false);
      if (!started) await sh('rabbitmq-server', ['-detached']).catch(() => undefined);
    }
    await waitFor('RabbitMQ to accept connections', () => portOpen(5672), 120_000);
    await sh('rabbitmqctl', ['-q', 'await_startup'], 120_000).catch(() => undefined);
  },
  /** The guard every scenario ends with: whatever happened, each service runs again. */
  async ensureAllUp(): Promise<void> {
    await sh('redis-cli', ['-h', '127.0.0.1', 'client', 'unpause'], 3000).catch(() => undefined);
    await Promise.all([services.pgStart(), services.redisStart(), services.rabbitStartApp()]);
  },
};

/** Outage windows, from the fault to the moment the dependency was confirmed back. */
export class Outages {
  readonly windows: Array<{ from: number; to: number | null }> = [];
  begin(): void {
    this.windows.push({ from: Date.now(), to: null });
  }
  end(): void {
    const open = this.windows.find((w) => w.to === null);
    if (open) open.to = Date.now();
  }
  get recoveredAt(): number {
    return Math.max(...this.windows.map((w) => w.to ?? Date.now()));
  }
  /** Whether a request in flight from `at` for `ms` overlapped an outage (plus the grace after it). */
  covers(at: number, graceMs: number, ms = 0): boolean {
    return this.windows.some((w) => at + ms >= w.from && at <= (w.to ?? Infinity) + graceMs);
  }
}

interface ProbeAnswer {
  at: number;
  status: number;
  ms: number;
  code?: string;
  /** What the api says it spent (`tookMs`) and which legs it dropped: where a slow answer's time went. */
  serverMs?: number;
  degraded?: string;
}

/** POST /api/v1/search in a loop, one at a time, each answer timed (a 5 s client timeout counts as status 0). */
export class SearchProbe {
  readonly answers: ProbeAnswer[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly apiUrl: () => string,
    private readonly token: string,
    private readonly everyMs = 200,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const started = performance.now();
        const at = Date.now();
        try {
          const res = await httpJson(`${this.apiUrl()}/api/v1/search`, {
            method: 'POST',
            token: this.token,
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ query: 'contract payment warranty', limit: 5 }),
            signal: AbortSignal.timeout(5000),
          });
          this.answers.push({
            at,
            status: res.status,
            ms: performance.now() - started,
            code: res.body?.error?.code,
            serverMs: res.body?.tookMs,
            // Each degraded leg with the start of its reason: which deadline cut it is the question asked of a slow answer.
            degraded: res.body?.degraded
              ? Object.entries(res.body.degraded as Record<string, unknown>).map(([leg, why]) => `${leg} (${String(why).slice(0, 90)})`).join(' + ')
              : undefined,
          });
        } catch (err) {
          this.answers.push({ at, status: 0, ms: performance.now() - started, code: (err as Error).name });
        }
        await new Promise((r) => setTimeout(r, this.everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

export interface UploadOutcome {
  documentId: string;
  jobId: string;
  /** Answers before the accepted one (503 while a dependency was down, network errors). */
  refused: Record<string, number>;
}

/**
 * `count` concurrent uploads of distinct documents. Each client retries what the api
 * refuses with a retryable status (honouring Retry-After) or a dropped connection,
 * until accepted or the deadline: nothing a client was told "accepted" may be lost,
 * and nothing refused was ever accepted.
 */
export async function uploadMany(mesh: TestMesh, token: string, count: number, options: { paragraphs?: number; seed?: number; deadlineMs?: number } = {}): Promise<UploadOutcome[]> {
  const deadline = Date.now() + (options.deadlineMs ?? 180_000);
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const refused: Record<string, number> = {};
      const content = syntheticText(options.paragraphs ?? 40, (options.seed ?? 1) * 1000 + i + 1);
      for (;;) {
        let status = 0;
        let label = '';
        let retryAfterMs = 500;
        try {
          const form = new FormData();
          form.append('file', new Blob([content], { type: 'text/markdown' }), `doc-${i}.md`);
          const res = await httpJson(`${mesh.apiUrl}/api/v1/documents`, { method: 'POST', body: form, token, signal: AbortSignal.timeout(120_000) });
          status = res.status;
          // 200 + duplicate: an earlier attempt of this client was stored after all (its
          // answer was lost to a timeout, or a 503 came after the commit): reported.
          if (status === 202 || status === 201 || (status === 200 && res.body?.duplicate)) {
            if (status === 200) refused[`duplicate after ${Object.keys(refused).join('+') || 'nothing'}`] = 1;
            return { documentId: res.body.document.id, jobId: res.body.job.id, refused };
          }
          label = `${status} ${res.body?.error?.code ?? ''}`.trim();
          if (![429, 502, 503, 504].includes(status)) throw new Error(`upload ${i}: ${status} ${JSON.stringify(res.body)}`);
          retryAfterMs = Math.min(5000, Number(res.headers.get('retry-after') ?? '1') * 1000);
        } catch (err) {
          if (status !== 0) throw err;
          label = `network ${(err as Error).name}`;
        }
        refused[label] = (refused[label] ?? 0) + 1;
        if (Date.now() > deadline) throw new Error(`upload ${i} never accepted: ${JSON.stringify(refused)}`);
        await new Promise((r) => setTimeout(r, retryAfterMs));
      }
    }),
  );
}

/** Reads the mesh's own database directly (the api may be the thing under test). */
export async function withDb<T>(mesh: TestMesh, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: mesh.databaseUrl });
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

export async function jobCounts(mesh: TestMesh, tenant: string): Promise<Record<string, number>> {
  return withDb(mesh, async (db) => {
    const { rows } = await db.query(`select status, count(*)::int as n from jobs where tenant_id = $1 group by status`, [tenant]);
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  });
}

/** Waits until `predicate` holds for the tenant's jobs in the database. */
export async function waitForJobs(mesh: TestMesh, tenant: string, what: string, predicate: (counts: Record<string, number>) => boolean, timeoutMs: number): Promise<Record<string, number>> {
  return waitFor(what, async () => {
    const counts = await jobCounts(mesh, tenant);
    return predicate(counts) ? counts : null;
  }, timeoutMs);
}

export interface ScenarioReport {
  scenario: string;
  uploads: number;
  refusedUploads: Record<string, number>;
  jobs: { ready: number; failed: number; unsettled: number; other: number };
  settledAfterRecoveryMs: number | null;
  duplicateChunks: number;
  chunks: number;
  vectors: number;
  orphanVectors: number;
  search: { byStatus: Record<string, number>; slowestMs: number; overGoal: number; outsideOutage: Record<string, number>; count: number; notable: string[] };
  outageMs: number;
  /** Jobs not ready, by status, attempts and error code: what to look at when a goal fails. */
  notReady: Record<string, number>;
  /** Warnings and errors each process logged, by message, counted. */
  processWarnings: Record<string, Record<string, number>>;
}

/**
 * Settles and counts: all jobs of the tenant ready or failed (at most 60 s after
 * recovery), no document with the same chunk twice, one vector per chunk.
 */
export async function measure(
  mesh: TestMesh,
  scenario: string,
  tenant: string,
  uploads: UploadOutcome[],
  probe: SearchProbe,
  outages: Outages,
  options: { settleMs?: number; graceMs?: number } = {},
): Promise<ScenarioReport> {
  const settleMs = options.settleMs ?? 60_000;
  let settledAfterRecoveryMs: number | null = null;
  const remaining = Math.max(1000, outages.recoveredAt + settleMs - Date.now());
  try {
    await waitForJobs(mesh, tenant, 'every job to settle', (c) => (c.queued ?? 0) + (c.running ?? 0) === 0 && Object.values(c).reduce((a, b) => a + b, 0) >= uploads.length, remaining);
    settledAfterRecoveryMs = Math.max(0, Date.now() - outages.recoveredAt);
  } catch {
    // Reported as unsettled below.
  }
  await probe.stop();
  const counts = await jobCounts(mesh, tenant);
  const refusedUploads: Record<string, number> = {};
  for (const u of uploads) for (const [k, v] of Object.entries(u.refused)) refusedUploads[k] = (refusedUploads[k] ?? 0) + v;

  const { duplicateChunks, chunks, vectors, orphanVectors } = await withDb(mesh, async (db) => {
    const dup = await db.query(
      `select count(*)::int as n from (select document_id, content_hash from chunks where tenant_id = $1 group by 1, 2 having count(*) > 1) d`,
      [tenant],
    );
    const ch = await db.query(`select count(*)::int as n from chunks where tenant_id = $1`, [tenant]);
    const collections = await db.query(`select name from vector_collections`);
    let vec = 0;
    let orphans = 0;
    for (const { name } of collections.rows) {
      const table = `vec_${String(name).replaceAll('-', '_')}`;
      vec += (await db.query(`select count(*)::int as n from ${table} where tenant_id = $1`, [tenant])).rows[0].n;
      orphans += (await db.query(`select count(*)::int as n from ${table} v where tenant_id = $1 and not exists (select 1 from chunks c where c.id = v.id)`, [tenant])).rows[0].n;
    }
    return { duplicateChunks: dup.rows[0].n as number, chunks: ch.rows[0].n as number, vectors: vec, orphanVectors: orphans };
  });

  const notReady = await withDb(mesh, async (db) => {
    const { rows } = await db.query(
      `select status, attempts, coalesce(error_code, '-') as code, left(coalesce(error, ''), 160) as error, count(*)::int as n
         from jobs where tenant_id = $1 and status <> 'ready' group by 1, 2, 3, 4 order by 5 desc`,
      [tenant],
    );
    return Object.fromEntries(rows.map((r) => [`${r.status} attempts=${r.attempts} ${r.code}${r.error ? `: ${r.error}` : ''}`, r.n as number]));
  });
  const processWarnings: Record<string, Record<string, number>> = {};
  // This scenario's lines only: the processes live through several.
  const since = new Date(probe.answers[0]?.at ?? 0).toISOString();
  for (const node of mesh.processes) {
    const tally: Record<string, number> = {};
    for (const entry of node.logs()) {
      if (typeof entry.time === 'string' && entry.time < since) continue;
      const serious = ['warn', 'error', 'fatal'].includes(String(entry.level)) || Number(entry.level) >= 40;
      if (!serious) continue;
      const err = entry.err as { code?: string; type?: string } | undefined;
      // Ids vary per line; without them the same warning counts as one.
      const msg = String(entry.msg ?? '').replace(/[0-9a-f]{8}-[0-9a-f-]{27,}|job-[\w-]+/gi, '…');
      const key = `${msg}${err?.code || err?.type ? ` [${err.type ?? err.code}]` : ''}`.slice(0, 160);
      tally[key] = (tally[key] ?? 0) + 1;
    }
    if (Object.keys(tally).length > 0) processWarnings[node.name] = tally;
    // Every log line of every process, for a closer look at one run.
    if (process.env.FAULT_LOG_DIR) writeFileSync(`${process.env.FAULT_LOG_DIR}/${scenario}-${node.name}.log`, `${node.lines.join('\n')}\n${node.stderr.join('')}`);
  }
  const graceMs = options.graceMs ?? 2000;
  const byStatus: Record<string, number> = {};
  const outsideOutage: Record<string, number> = {};
  for (const a of probe.answers) {
    const key = a.status === 200 ? '200' : `${a.status} ${a.code ?? ''}`.trim();
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    if (a.status !== 200 && !outages.covers(a.at, graceMs, a.ms)) outsideOutage[key] = (outsideOutage[key] ?? 0) + 1;
  }
  const report: ScenarioReport = {
    scenario,
    uploads: uploads.length,
    refusedUploads,
    jobs: {
      ready: counts.ready ?? 0,
      failed: counts.failed ?? 0,
      unsettled: (counts.queued ?? 0) + (counts.running ?? 0),
      other: Object.entries(counts).filter(([k]) => !['ready', 'failed', 'queued', 'running'].includes(k)).reduce((a, [, n]) => a + n, 0),
    },
    settledAfterRecoveryMs,
    duplicateChunks,
    chunks,
    vectors,
    orphanVectors,
    search: {
      byStatus,
      slowestMs: Math.round(Math.max(0, ...probe.answers.map((a) => a.ms))),
      overGoal: probe.answers.filter((a) => a.ms >= 1000).length,
      outsideOutage,
      count: probe.answers.length,
      // Slow or failed answers, at seconds from the first fault (negative: before it), for the log.
      notable: probe.answers
        .filter((a) => a.ms >= 1000 || a.status !== 200)
        .map((a) => `${((a.at - (outages.windows[0]?.from ?? a.at)) / 1000).toFixed(1)}s:${a.status}:${Math.round(a.ms)}ms${a.serverMs !== undefined ? `(api ${Math.round(a.serverMs)}ms)` : ''}${a.degraded ? `:degraded ${a.degraded}` : ''}`),
    },
    outageMs: outages.windows.reduce((a, w) => a + ((w.to ?? Date.now()) - w.from), 0),
    notReady,
    processWarnings,
  };
  // One line per scenario, for the CI log and the closing note.
  console.log(`FAULT ${JSON.stringify(report)}`);
  return report;
}

/**
 * The goals of every scenario. Search latency is printed against its 1 s goal
 * (`slowestMs`, `overGoal`) but asserted only as "no answer hung" (each within the
 * probe's 5 s client timeout) and "errors only while the dependency was down": on two
 * shared cores a wall-clock bound would test the machine's load, not the code
 * (timings belong in bench/). FAULT_SEARCH_GOAL_MS=1000 makes the 1 s goal an assert.
 */
export function assertGoals(report: ScenarioReport): void {
  const r = report;
  assert.equal(r.jobs.unsettled, 0, `${r.scenario}: jobs unsettled 60 s after recovery: ${JSON.stringify(r.jobs)}`);
  assert.equal(r.jobs.ready, r.uploads, `${r.scenario}: every job ready: ${JSON.stringify(r.jobs)}`);
  assert.equal(r.duplicateChunks, 0, `${r.scenario}: duplicate chunks`);
  assert.ok(r.chunks > 0, `${r.scenario}: chunks stored`);
  assert.equal(r.vectors, r.chunks, `${r.scenario}: one vector per chunk`);
  assert.equal(r.orphanVectors, 0, `${r.scenario}: no vector without its chunk`);
  assert.ok(r.search.count > 0, `${r.scenario}: the probe searched`);
  assert.equal(r.search.byStatus['0 TimeoutError'] ?? 0, 0, `${r.scenario}: a search hung past 5 s: ${r.search.notable.join(' ')}`);
  assert.deepEqual(r.search.outsideOutage, {}, `${r.scenario}: search failed only while the dependency was down: ${r.search.notable.join(' ')}`);
  const goal = Number(process.env.FAULT_SEARCH_GOAL_MS ?? 0);
  if (goal > 0) assert.ok(r.search.slowestMs < goal, `${r.scenario}: every search answered within ${goal} ms (slowest ${r.search.slowestMs} ms)`);
}

/** Waits until the tenant has work in flight: some uploads accepted and a job running. */
export async function waitForLoad(mesh: TestMesh, tenant: string, minJobs = 5): Promise<void> {
  await waitForJobs(mesh, tenant, 'uploads in flight', (c) => Object.values(c).reduce((a, b) => a + b, 0) >= minJobs && (c.running ?? 0) + (c.queued ?? 0) > 0, 60_000);
}
