import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * Real services of the test machine. Each helper makes a fresh, uniquely named
 * database / vhost / key prefix / bucket so parallel or repeated runs never collide,
 * and fails loudly (never skips) when the service is down: integration tests must
 * not pass without the thing they integrate with.
 */

const run = promisify(execFile);

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_BASE_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const AMQP_HOST = process.env.TEST_AMQP_HOST ?? '127.0.0.1:5672';

export const uniqueName = (prefix: string) => `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;

export interface Disposable<T> {
  value: T;
  dispose(): Promise<void>;
}

export async function createTestDatabase(): Promise<Disposable<string>> {
  const name = uniqueName('ragmesh_t');
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    value: url.toString(),
    async dispose() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A RabbitMQ vhost of our own, made with rabbitmqctl (the management plugin may be off). */
export async function createTestVhost(): Promise<Disposable<string>> {
  const vhost = uniqueName('ragmesh_t');
  await run('rabbitmqctl', ['-q', 'add_vhost', vhost]);
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  return {
    value: `amqp://guest:guest@${AMQP_HOST}/${vhost}`,
    async dispose() {
      await run('rabbitmqctl', ['-q', 'delete_vhost', vhost]).catch(() => undefined);
    },
  };
}

export function testKeyPrefix(): string {
  return `${uniqueName('ragmesh_t')}:`;
}

export async function tempDir(prefix = 'ragmesh-'): Promise<Disposable<string>> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { value: dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}
