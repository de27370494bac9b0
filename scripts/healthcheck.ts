/**
 * The container HEALTHCHECK: GET /readyz of this process — the api's port when it runs
 * the api, HEALTH_PORT otherwise. Plain Node (type stripping, no tsx) so a probe every
 * few seconds costs little. Exit 0 = ready.
 */
const env = process.env;
const services = (env.SERVICES ?? 'api').split(',').map((s) => s.trim());
const port = services.includes('api') ? (env.PORT ?? '3000') : (env.HEALTH_PORT ?? '0');
if (port === '0') {
  process.stderr.write('healthcheck: this process has no HTTP port (set HEALTH_PORT)\n');
  process.exit(1);
}
try {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(Number(env.HEALTHCHECK_TIMEOUT_MS ?? 2500)) });
  if (!res.ok) process.stderr.write(`healthcheck: /readyz answered ${res.status}: ${(await res.text()).slice(0, 500)}\n`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`healthcheck: ${(err as Error).message}\n`);
  process.exit(1);
}

export {};
