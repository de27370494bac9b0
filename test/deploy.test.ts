import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig, SERVICE_NAMES } from '../lib/config/env.ts';
import { ROOT } from './support/processes.ts';

/** No Docker engine runs here, so the stack is checked for what a deploy would trip on. */
describe('stack.yml', async () => {
  const stack = parse(await readFile(`${ROOT}/stack.yml`, 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; networks?: string[]; ports?: unknown; healthcheck?: unknown; deploy?: { replicas?: number } }>;
    networks: Record<string, { internal?: boolean }>;
  };
  const deployShell: Record<string, string> = {
    RABBITMQ_PASSWORD: 'r',
    POSTGRES_PASSWORD: 'p',
    MINIO_ROOT_USER: 'minio',
    MINIO_ROOT_PASSWORD: 'minio-secret',
    JWT_SECRET: 'j'.repeat(48),
  };
  const substitute = (value: string) => value.replace(/\$\{(\w+)\}/g, (_, name: string) => deployShell[name] ?? `<unset ${name}>`);

  it('runs each of the six services as its own replicated, health-checked service', () => {
    for (const name of SERVICE_NAMES) {
      const service = stack.services[name];
      assert.ok(service, `${name} is missing`);
      assert.equal(service.environment?.SERVICES, name);
      assert.ok(service.healthcheck, `${name} has no healthcheck`);
      assert.ok((service.deploy?.replicas ?? 0) >= 1);
    }
  });

  it('gives every service an environment that passes the boot-time config check', () => {
    for (const name of SERVICE_NAMES) {
      const env = Object.fromEntries(Object.entries(stack.services[name]!.environment!).map(([k, v]) => [k, substitute(String(v))]));
      const config = loadConfig(env);
      assert.equal(config.profile, 'mesh');
      assert.deepEqual(config.services, [name]);
      assert.match(config.transporter ?? '', /^amqp:\/\/ragmesh:r@rabbitmq:5672\/ragmesh$/);
    }
  });

  it('publishes only nginx and keeps the backend without a route out', () => {
    const published = Object.entries(stack.services).filter(([, s]) => s.ports).map(([n]) => n);
    assert.deepEqual(published, ['nginx']);
    assert.equal(stack.networks.backend?.internal, true);
    for (const [name, service] of Object.entries(stack.services)) {
      if (name !== 'nginx') assert.deepEqual(service.networks, ['backend'], name);
    }
  });
});

describe('nginx.conf', () => {
  it('streams SSE and uploads unbuffered and forwards the request id', async () => {
    const conf = await readFile(`${ROOT}/nginx/nginx.conf`, 'utf8');
    for (const directive of ['proxy_buffering off', 'proxy_request_buffering off', 'proxy_read_timeout 1h', 'proxy_set_header X-Request-ID']) {
      assert.ok(conf.includes(directive), directive);
    }
  });
});
