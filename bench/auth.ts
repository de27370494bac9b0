/**
 * bench:auth — what the api's access checks add to a request: authenticating the
 * credential (CredentialVerifier: an EdDSA token, or an API key read from PGlite, each
 * verified once and then served from the cache of verified credentials), the
 * permission table and the sliding-window rate limit, against the same request
 * without them, in one run.
 *
 *   ratio = mean latency with the checks / mean latency without     goal ≤ 1.03, lower is better
 *
 * `ratio` is the worse of the two credentials (token, API key); both are printed. All
 * three kinds go through a real moleculer-web gateway over HTTP (keep-alive) to the
 * same trivial action, all with the same Authorization header and through the same
 * authenticate/authorize hooks (doing nothing on the unchecked gateway), each kind of
 * gateway with the same one route, so the difference is the checks alone;
 * authenticate/authorize call the very objects services/api/api.service.ts calls, the
 * same way (CredentialVerifier.cachedBearer, else authenticate; RateLimiter.check).
 * Requests of the three kinds take turns one by one, so drifting
 * load on a noisy machine hits all alike; the slowest 1 % of each kind (other
 * processes' bursts on a shared machine) is left out of the means.
 */
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'node:http';
import { ServiceBroker } from 'moleculer';
import ApiGateway from 'moleculer-web';
import { migrateLatest, openDatabase } from '../lib/adapters/db/database.ts';
import { MemoryKeyValueStore } from '../lib/adapters/kv/memory.ts';
import { ApiKeyAuthenticator, mintApiKey } from '../lib/auth/api-keys.ts';
import { CredentialVerifier, DEFAULT_CREDENTIAL_CACHE } from '../lib/auth/credentials.ts';
import type { Principal } from '../lib/auth/jwt.ts';
import { DEFAULT_RATE_LIMITS, RateLimiter } from '../lib/auth/rate-limit.ts';
import { AccessTokens } from '../lib/auth/tokens.ts';
import { tenantScope } from '../lib/ports/tenant-scope.ts';
import { ApiKeysRepository } from '../lib/repositories/api-keys.ts';
import { TenantsRepository } from '../lib/repositories/tenants.ts';
import { tempDir } from '../test/support/services.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 6000);

async function main(): Promise<void> {
  const dir = await tempDir();
  const tokens = await AccessTokens.open({ issuer: 'ragmesh', audience: 'ragmesh', keysFile: path.join(dir.value, 'keys.json'), hsSecret: null, createKeys: true });
  const db = await openDatabase({ db: { driver: 'pglite', url: null, poolMax: 1, migrateOnStart: true }, dataDir: dir.value });
  await migrateLatest(db);
  const minted = mintApiKey();
  await new TenantsRepository(db.knex).recordMember(tenantScope('bench'), 'bench-key', ['viewer']);
  await new ApiKeysRepository(db.knex).create(tenantScope('bench'), { id: minted.id, userId: 'bench-key', name: 'bench', roles: ['viewer'], secretHash: minted.secretHash, createdBy: 'bench' });
  const credentials = new CredentialVerifier(tokens, new ApiKeyAuthenticator(async () => db.knex), DEFAULT_CREDENTIAL_CACHE);
  const kv = new MemoryKeyValueStore();
  // Limits far above the run, so every request pays the full check and none is refused.
  const limiter = new RateLimiter(kv, { windowMs: 60_000, perUser: { ...DEFAULT_RATE_LIMITS.perUser, read: 1_000_000 }, perTenant: { ...DEFAULT_RATE_LIMITS.perTenant, read: 1_000_000 } });
  const token = await tokens.sign({ tenantId: 'bench', userId: 'bench', roles: ['viewer'] }, 3600);

  const broker = new ServiceBroker({ logger: false });
  broker.createService({
    name: 'bench',
    actions: { ping: { handler: () => ({ ok: true }) } },
  });
  // One gateway per kind, each with the same one route: moleculer-web tries aliases in
  // order, so two routes on one gateway made the second pay a failed match (~0.3 µs)
  // that is no check. They differ only in the hooks.
  const gateway = (name: string, authentication: string | boolean, authorization: string | boolean) =>
    broker.createService({
      name,
      mixins: [ApiGateway],
      settings: { port: 0, ip: '127.0.0.1', routes: [{ path: '/api', mappingPolicy: 'restrict', authentication, authorization, aliases: { 'GET ping': 'bench.ping' } }] },
      methods: {
        // The same gateway hooks, doing nothing: moleculer-web's own cost of calling them (an
        // await each) is not the checks, and the api runs them on public routes as well.
        noCaller: async () => null,
        noCheck: async () => undefined,
        // As services/api/api.service.ts does: the cached credential without a promise, else the full check.
        async authenticate(ctx: { meta: Record<string, unknown> }, _route: unknown, req: { headers: Record<string, string | undefined>; checkedAt?: number }) {
          const header = req.headers.authorization ?? '';
          const now = (req.checkedAt = Date.now());
          const principal = credentials.cachedBearer(header, now) ?? (await credentials.authenticate(header.slice('Bearer '.length)));
          ctx.meta.auth = principal;
          return principal;
        },
        async authorize(ctx: { meta: { auth?: Principal } }, _route: unknown, req: { checkedAt?: number }) {
          const counting = limiter.check(ctx.meta.auth, 'documents.read', req.checkedAt);
          if (counting) await counting;
        },
      },
    });
  gateway('open', 'noCaller', 'noCheck');
  gateway('checked', true, true);
  await broker.start();
  const portOf = (name: string) => ((broker.getLocalService(name) as unknown as { server: { address(): { port: number } } }).server.address()).port;
  const agents: Agent[] = [];
  const get = (name: string, auth?: string) => {
    const port = portOf(name);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    return () =>
      new Promise<number>((resolve, reject) => {
        const started = process.hrtime.bigint();
        const req = request({ host: '127.0.0.1', port, path: '/api/ping', agent, headers: auth ? { Authorization: `Bearer ${auth}` } : {} }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`${name}: ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      });
  };
  const kinds = [
    // The unchecked request carries the same Authorization header, ignored: the bytes on the wire are not the checks.
    { name: 'open', run: get('open', token), times: [] as number[] },
    { name: 'token', run: get('checked', token), times: [] as number[] },
    { name: 'apiKey', run: get('checked', minted.token), times: [] as number[] },
  ];
  for (let i = 0; i < 300; i++) for (const kind of kinds) await kind.run();
  for (let i = 0; i < REQUESTS; i++) {
    // The order rotates too, so no kind always follows another.
    for (let j = 0; j < kinds.length; j++) {
      const kind = kinds[(i + j) % kinds.length]!;
      kind.times.push(await kind.run());
    }
  }
  await broker.stop();
  for (const agent of agents) agent.destroy();
  await kv.close();
  await db.close();
  await dir.dispose();

  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const mean = (xs: number[]) => {
    const kept = sorted(xs).slice(0, Math.ceil(xs.length * 0.99));
    return kept.reduce((a, b) => a + b, 0) / kept.length;
  };
  const p50 = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
  const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;
  const [open, jwt, apiKey] = kinds.map((k) => k.times) as [number[], number[], number[]];
  const tokenRatio = mean(jwt) / mean(open);
  const apiKeyRatio = mean(apiKey) / mean(open);
  console.log(
    `requests per kind: ${REQUESTS}; mean without checks ${round(mean(open), 3)} ms, token ${round(mean(jwt), 3)} ms, API key ${round(mean(apiKey), 3)} ms; ` +
      `p50 ${round(p50(open), 3)} / ${round(p50(jwt), 3)} / ${round(p50(apiKey), 3)} ms`,
  );
  console.log(
    JSON.stringify({
      bench: 'auth',
      ratio: round(Math.max(tokenRatio, apiKeyRatio)),
      goal: 1.03,
      lower_is_better: true,
      token_ratio: round(tokenRatio),
      api_key_ratio: round(apiKeyRatio),
      mean_ms_without: round(mean(open), 4),
      mean_ms_token: round(mean(jwt), 4),
      mean_ms_api_key: round(mean(apiKey), 4),
      added_us_token: round((mean(jwt) - mean(open)) * 1000, 1),
      added_us_api_key: round((mean(apiKey) - mean(open)) * 1000, 1),
      p50_ratio_token: round(p50(jwt) / p50(open)),
      p50_ratio_api_key: round(p50(apiKey) / p50(open)),
      requests: REQUESTS,
      node: process.version,
      cpus: os.cpus().length,
      checks: ['credential cache (LRU keyed by a 32-bit hash of the credential tail, compared whole, answered without a promise) over EdDSA verify (jose) / API key row (PGlite)', 'permission table', 'sliding-window rate limit (memory KV, answered without a promise)'],
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
