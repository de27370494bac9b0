import { parseArgs } from 'node:util';
import { parseRole, resolveJwtSecret } from '../lib/auth/jwt.ts';
import { AccessTokens, tokenSettings } from '../lib/auth/tokens.ts';
import { loadConfig } from '../lib/config/env.ts';
import { ConfigError } from '../lib/errors.ts';

/**
 * Prints an access token for the configured secret:
 *   npm run -s token -- --tenant acme --user alice --role editor [--role admin] [--ttl 3600]
 * Signed with the active key of the signing keyset (EdDSA, kid), the same file the
 * api verifies with (JWT_KEYS_FILE; the embedded profile creates it under DATA_DIR),
 * so the token works against the running server. Without a keyset in the mesh it
 * falls back to HS256 with JWT_SECRET.
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
  const hsSecret = config.profile === 'mesh' ? config.auth.jwtSecret : await resolveJwtSecret(config);
  const tokens = await AccessTokens.open(tokenSettings(config, hsSecret));
  const token = await tokens.sign({ tenantId: values.tenant, userId: values.user, roles }, ttlSeconds);
  process.stdout.write(`${token}\n`);
}

main().catch((err) => {
  process.stderr.write(`token: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
