/**
 * The test tiers. `npm test` runs every test file; `npm run test:unit` runs the unit
 * tier: the files that need no server (no PostgreSQL, Redis, RabbitMQ, S3, nginx, no
 * booted node) — told from what they import, so a new test lands in the right tier
 * without a list to keep. `--list` prints the tier instead of running it.
 *
 *   tsx scripts/test-tiers.ts unit [--list]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['lib', 'services', 'scripts', 'test'];

/** What a test imports or starts that means a server or a whole node. */
const NEEDS_A_SERVER = [
  /support\/(databases|embedded|mesh|s3-server|nginx|browser|ingest|deployment-state|ocr)\.ts/,
  /\b(createTestDatabase|createTestVhost|testKeyPrefix|startProcess|runScript|spawn|execFile)\b/,
  /lib\/adapters\/(db|queue|kv\/redis|objects\/s3|vectors\/qdrant)/,
  /lib\/runtime\/(boot|stores)\.ts/,
  // A whole node booted in-process (boot.ts beside main.ts): an embedded PGlite, emb with its model, the gateway.
  /from '(\.\.\/)+(boot|main)\.ts'/,
  /\bbootNode\b/,
  /\bfrom '(pg|ioredis|amqplib|minio|playwright-core|s3rver)'/,
  /\bServiceBroker\b/,
];

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) return [];
    if (statSync(full).isDirectory()) return testFiles(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

export function unitTier(): string[] {
  return FOLDERS.flatMap((f) => testFiles(path.join(ROOT, f)))
    .filter((file) => !/\/test\/(e2e|faults)\//.test(file))
    .filter((file) => !NEEDS_A_SERVER.some((pattern) => pattern.test(readFileSync(file, 'utf8'))))
    .map((file) => path.relative(ROOT, file))
    .sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [tier, flag] = process.argv.slice(2);
  if (tier !== 'unit') throw new Error('usage: tsx scripts/test-tiers.ts unit [--list]');
  const files = unitTier();
  if (flag === '--list') {
    console.log(files.join('\n'));
  } else {
    // All files in one process: none of them needs a server or keeps global state, and
    // a process per file spent most of the tier starting node and compiling the same
    // modules again (32 files: 85 s wall and 51 s of CPU at load 4–7, one process: 17–34 s
    // wall and 13 s of CPU). `npm test` keeps a process per file.
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--experimental-test-isolation=none', '--test-reporter=spec', ...files], { cwd: ROOT, stdio: 'inherit' });
    process.exit(run.status ?? 1);
  }
}
