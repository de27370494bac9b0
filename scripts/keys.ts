import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config/env.ts';
import { ConfigError } from '../lib/errors.ts';
import { newKeySet, readKeySet, retireKey, rotateKeySet, writeKeySet, type KeySet } from '../lib/auth/keys.ts';

const USAGE = `usage: npm run keys -- <command> [--file path]
  list            the keys of the signing keyset (kid, state, dates; never the private halves)
  init            create a keyset (an active and a next key) where none exists
  rotate          next key signs from now on, the active one verifies until its tokens expire
                  (JWT_TTL_SECONDS), a new next key is made, expired retiring keys are dropped
  retire <kid>    drop a key now: tokens it signed stop working (a leaked key)
The keyset is JWT_KEYS_FILE (default DATA_DIR/secrets/signing-keys.json), or --file.
Running api processes notice a rewritten file within a second; in the mesh, publish
the file as a new version of the Swarm secret (see docs/security.md).`;

/** Key management as plain functions with typed results; main() prints them. */
export async function keysCommand(command: string, args: string[], file: string, tokenTtlSeconds: number): Promise<{ set: KeySet; message: string }> {
  const existing = await readKeySet(file);
  switch (command) {
    case 'list':
      if (!existing) throw new Error(`no keyset at ${file}; run: npm run keys -- init`);
      return { set: existing, message: '' };
    case 'init': {
      if (existing) return { set: existing, message: `a keyset already exists at ${file}` };
      const set = await newKeySet();
      await writeKeySet(file, set);
      return { set, message: `created ${file}` };
    }
    case 'rotate': {
      if (!existing) throw new Error(`no keyset at ${file}; run: npm run keys -- init`);
      const set = await rotateKeySet(existing, tokenTtlSeconds);
      await writeKeySet(file, set);
      return { set, message: `rotated: ${set.keys[0]!.kid} signs from now on` };
    }
    case 'retire': {
      if (!existing) throw new Error(`no keyset at ${file}`);
      const kid = args[0];
      if (!kid) throw new Error('retire needs a kid');
      const set = retireKey(existing, kid);
      await writeKeySet(file, set);
      return { set, message: `retired ${kid}: tokens it signed are refused` };
    }
    default:
      throw new Error(USAGE);
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { file: { type: 'string' }, json: { type: 'boolean' } } });
  const [command = '', ...rest] = positionals;
  const config = loadConfig();
  const file = values.file ?? config.auth.keysFile;
  const { set, message } = await keysCommand(command, rest, file, config.auth.ttlSeconds);
  if (message) process.stderr.write(`${message}\n`);
  const rows = set.keys.map((k) => ({ kid: k.kid, state: k.state, createdAt: k.createdAt, retiresAt: k.retiresAt ?? null }));
  if (values.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else for (const r of rows) process.stdout.write(`${r.kid}  ${r.state.padEnd(8)}  created ${r.createdAt}${r.retiresAt ? `  verifies until ${r.retiresAt}` : ''}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    process.stderr.write(`keys: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}
