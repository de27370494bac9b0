/**
 * bench:auth — what the api's access checks add to a request: verifying the EdDSA token
 * (kid lookup, signature, claims), the permission table and the sliding-window rate
 * limit, against the same request without them, in one run.
 *
 *   ratio = mean latency with the checks / mean latency without     goal ≤ 1.03, lower is better
 *
 * Both go through a real moleculer-web gateway over HTTP (keep-alive) to the same
 * trivial action, so the difference is the checks alone; the authorize/authenticate
 * methods call the very functions services/api/api.service.ts calls. Requests of the
 * two kinds alternate in blocks, so drifting load on a noisy machine hits both.
 */
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'node:http';
import { ServiceBroker } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { MemoryKeyValueStore } from '../lib/adapters/kv/memory.ts';
import { permissionOf, requirePermission } from '../lib/auth/permissions.ts';
import { DEFAULT_RATE_LIMITS, RateLimiter } from '../lib/auth/rate-limit.ts';
import { AccessTokens } from '../lib/auth/tokens.ts';
import { tempDir } from '../test/support/services.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const BLOCK = 100;

async function main(): Promise<void> {
  const dir = await tempDir();
  const tokens = await AccessTokens.open({ issuer: 'ragmesh', audience: 'ragmesh', keysFile: path.join(dir.value, 'keys.json'), hsSecret: null, createKeys: true });
  const kv = new MemoryKeyValueStore();
  // Limits far above the run, so every request pays the full check and none is refused.
  const limiter = new RateLimiter(kv, { windowMs: 60_000, perUser: { ...DEFAULT_RATE_LIMITS.perUser, read: 1_000_000 }, perTenant: { ...DEFAULT_RATE_LIMITS.perTenant, read: 1_000_000 } });
  const token = await tokens.sign({ tenantId: 'bench', userId: 'bench', roles: ['viewer'] }, 3600);

  const broker = new ServiceBroker({ logger: false });
  broker.createService({
    name: 'bench',
    actions: { ping: { handler: () => ({ ok: true }) } },
  });
  broker.createService({
    name: 'gw',
    mixins: [ApiGateway],
    settings: {
      port: 0,
      ip: '127.0.0.1',
      routes: [
        { path: '/open', mappingPolicy: 'restrict', aliases: { 'GET ping': 'bench.ping' } },
        { path: '/checked', mappingPolicy: 'restrict', authentication: true, authorization: true, aliases: { 'GET ping': 'bench.ping' } },
      ],
    },
    methods: {
      async authenticate(ctx: { meta: Record<string, unknown> }, _route: unknown, req: { headers: Record<string, string | undefined> }) {
        const header = req.headers.authorization ?? '';
        const principal = await tokens.verify(header.slice('Bearer '.length));
        ctx.meta.auth = principal;
        return principal;
      },
      async authorize(ctx: { meta: { auth?: never } }) {
        const principal = requirePermission(ctx.meta.auth, 'documents.read');
        await limiter.hit(principal, permissionOf('documents.read').rate);
      },
    },
  });
  await broker.start();
  const port = ((broker.getLocalService('gw') as unknown as { server: { address(): { port: number } } }).server.address()).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = (p: string, auth?: string) =>
    new Promise<number>((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = request({ host: '127.0.0.1', port, path: p, agent, headers: auth ? { Authorization: `Bearer ${auth}` } : {} }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`${p}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  for (let i = 0; i < 300; i++) {
    await get('/open/ping');
    await get('/checked/ping', token);
  }
  const open: number[] = [];
  const checked: number[] = [];
  for (let done = 0; done < REQUESTS; done += BLOCK) {
    for (let i = 0; i < BLOCK; i++) open.push(await get('/open/ping'));
    for (let i = 0; i < BLOCK; i++) checked.push(await get('/checked/ping', token));
  }
  await broker.stop();
  agent.destroy();
  await kv.close();
  await dir.dispose();

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;
  const ratio = mean(checked) / mean(open);
  console.log(`requests per kind: ${REQUESTS}; mean without checks ${round(mean(open), 3)} ms, with ${round(mean(checked), 3)} ms; p50 ${round(p50(open), 3)} / ${round(p50(checked), 3)} ms`);
  console.log(
    JSON.stringify({
      bench: 'auth',
      ratio: round(ratio),
      goal: 1.03,
      lower_is_better: true,
      mean_ms_without: round(mean(open), 4),
      mean_ms_with: round(mean(checked), 4),
      added_us_per_request: round((mean(checked) - mean(open)) * 1000, 1),
      p50_ratio: round(p50(checked) / p50(open)),
      requests: REQUESTS,
      node: process.version,
      cpus: os.cpus().length,
      checks: ['EdDSA verify (jose)', 'permission table', 'sliding-window rate limit (memory KV)'],
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
