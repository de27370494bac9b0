import { parseArgs } from 'node:util';
import { parseRole, resolveJwtSecret, signAccessToken } from '../lib/auth/jwt.ts';
import { loadConfig } from '../lib/config/env.ts';
import { ConfigError } from '../lib/errors.ts';

/**
 * Prints an access token for the configured secret:
 *   npm run -s token -- --tenant acme --user alice --role editor [--role admin] [--ttl 3600]
 * In the embedded profile the secret is DATA_DIR/secrets/jwt-secret, the same file
 * `npm start` uses, so the token works against the running server.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tenant: { type: 'string' },
      user: { type: 'string' },
      role: { type: 'string', multiple: true },
      ttl: { type: 'string' },
    },
  });
  if (!values.tenant || !values.user) {
    process.stderr.write('usage: npm run -s token -- --tenant T --user U --role R [--role R2] [--ttl seconds]\n');
    process.exit(2);
  }
  const config = loadConfig();
  const roles = (values.role?.length ? values.role : ['viewer']).flatMap((r) => r.split(',')).map((r) => parseRole(r.trim()));
  const ttlSeconds = values.ttl ? Number(values.ttl) : config.auth.ttlSeconds;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new Error('--ttl must be a positive integer');
  const token = await signAccessToken(
    { tenantId: values.tenant, userId: values.user, roles },
    await resolveJwtSecret(config),
    { issuer: config.auth.issuer, ttlSeconds },
  );
  process.stdout.write(`${token}\n`);
}

main().catch((err) => {
  process.stderr.write(`token: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
