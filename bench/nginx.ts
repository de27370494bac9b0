/**
 * bench:nginx — time to the first SSE token of a chat answer through nginx (nginx/nginx.conf
 * run by Debian's nginx, as test/nginx.test.ts runs it) against the same api directly, in
 * one run, requests alternating so machine noise hits both alike.
 *
 *   ratio = added ms at p50 (through nginx p50 − direct p50)     goal ≤ 5 ms, lower is better
 *
 * The api is the embedded default in its own process; plain chat (no retrieval) with the
 * offline extractive backend, so the figure is nginx's cost. The per-client request
 * limit of nginx and the api's chat rate limits are lifted for the bench only (a sequential
 * client would otherwise hit them); everything else is the shipped config.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { signAccessToken } from '../lib/auth/jwt.ts';
import { NGINX_BIN, startNginx } from '../test/support/nginx.ts';
import { freePort, startNode } from '../test/support/processes.ts';
import { tempDir } from '../test/support/services.ts';
import { firstTokenMs } from './support.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 150);
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const round = (x: number) => Math.round(x * 100) / 100;

const firstToken = (url: string, token: string) => firstTokenMs(url, token, { content: `hello there ${randomUUID()}`, rag: false });

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx)');
  const dir = await tempDir();
  const secret = randomBytes(32).toString('hex');
  const port = await freePort();
  const api = startNode('api', { DATA_DIR: dir.value, PORT: String(port), JWT_SECRET: secret, LOG_LEVEL: 'warn', CHAT_STREAMS_PER_USER: '100',
    // The api's own per-user/per-tenant chat limits would stop a bench of hundreds of answers a minute.
    RATE_LIMIT_PER_USER: 'chat=0', RATE_LIMIT_PER_TENANT: 'chat=0' });
  let nginx: Awaited<ReturnType<typeof startNginx>> | null = null;
  try {
    const direct = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if ((await fetch(`${direct}/readyz`).catch(() => null))?.ok) break;
      if (api.child.exitCode !== null || i > 3000) throw new Error(`api did not start: ${api.stderr.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    nginx = await startNginx(`127.0.0.1:${port}`, [['rate=20r/s', 'rate=100000r/s']]);
    const token = await signAccessToken({ tenantId: 'bench', userId: 'user', roles: ['editor'] }, secret, { issuer: 'ragmesh', ttlSeconds: 3600 });
    const chat = (await (await fetch(`${direct}/api/v1/chats`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } })).json()) as { id: string };
    const path = `/api/v1/chats/${chat.id}/messages`;

    for (let i = 0; i < 10; i++) {
      await firstToken(`${direct}${path}`, token);
      await firstToken(`${nginx.url}${path}`, token);
    }
    const viaNginx: number[] = [];
    const straight: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      // Alternate which goes first, so neither always follows the other.
      if (i % 2 === 0) {
        viaNginx.push(await firstToken(`${nginx.url}${path}`, token));
        straight.push(await firstToken(`${direct}${path}`, token));
      } else {
        straight.push(await firstToken(`${direct}${path}`, token));
        viaNginx.push(await firstToken(`${nginx.url}${path}`, token));
      }
    }
    const added = percentile(viaNginx, 50) - percentile(straight, 50);
    // nginx -v prints on stderr.
    const nginxVersion = spawnSync(NGINX_BIN, ['-v'], { encoding: 'utf8' }).stderr.trim();
    // Each sample pairs one request through nginx with one direct, taken back to back.
    const pairedAdded = percentile(viaNginx.map((v, i) => v - straight[i]!), 50);
    console.log(`first token: nginx p50 ${round(percentile(viaNginx, 50))} ms, p95 ${round(percentile(viaNginx, 95))} ms; direct p50 ${round(percentile(straight, 50))} ms, p95 ${round(percentile(straight, 95))} ms`);
    console.log(
      JSON.stringify({
        bench: 'nginx',
        ratio: round(added),
        goal: 5,
        lower_is_better: true,
        unit: 'ms added at p50 to the first SSE token',
        nginx_p50_ms: round(percentile(viaNginx, 50)),
        nginx_p95_ms: round(percentile(viaNginx, 95)),
        direct_p50_ms: round(percentile(straight, 50)),
        direct_p95_ms: round(percentile(straight, 95)),
        samples: SAMPLES,
        paired_added_p50_ms: round(pairedAdded),
        nginx: nginxVersion,
        nginx_worker_processes: 'auto',
        backend: 'extractive',
        cores: os.cpus().length,
        loadavg_1m: { start: round(loadBefore), end: round(os.loadavg()[0]!) },
        node: process.version,
      }),
    );
  } finally {
    await nginx?.stop();
    await api.stop();
    await dir.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
